import ArgumentParser
import EtagConfig
import EtagCore
import EtagServer
#if canImport(Glibc)
import Glibc
#endif

/// `etag-proxy --config FILE [--listen HOST:PORT] [--upstream URL] [--workers N] [--check-config] [--print-config]`,
/// and `etag-proxy health` for container health checks.
struct EtagProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etag-proxy",
        abstract: "A reverse proxy that adds strong ETags, 304s and If-Match checks to an HTTP/JSON API.",
        discussion: """
            Every config key can also be set in the environment: ETAG_PROXY_ + the key in capitals with dots as \
            underscores, e.g. ETAG_PROXY_UPSTREAM=http://api:9000 or ETAG_PROXY_TIMEOUTS_UPSTREAM=5s. Flags win \
            over the environment, the environment over the file. An ETAG_PROXY_ variable that names no key is an \
            error. SIGTERM/SIGINT drain and stop; SIGHUP re-reads the file and the environment.
            """,
        version: EtagProxyVersion.string,
        subcommands: [HealthCommand.self])

    @Option(name: .long, help: "YAML config file.")
    var config: String?

    @Option(name: .long, help: "Listen address HOST:PORT (overrides the file).")
    var listen: String?

    @Option(name: .long, help: "Upstream URL http://HOST:PORT (overrides the file).")
    var upstream: String?

    @Option(name: .long, help: "Worker threads, a number or auto (overrides the file).")
    var workers: String?

    @Flag(name: .long, help: "Validate the configuration and exit.")
    var checkConfig = false

    @Flag(name: .long, help: "Print the effective configuration, each value with its source, and exit.")
    var printConfig = false

    @Flag(name: .long, help: "Share the listen port with a proxy already there (listen_reuse: true), to replace it.")
    var takeover = false

    /// The file, the environment, then the flags.
    func loadConfig(sources: ConfigSources? = nil) throws(ConfigError) -> ProxyConfig {
        do {
            var cfg = try ConfigLoader.load(file: config, sources: sources)
            try ConfigLoader.applyFlags(
                listen: listen, upstream: upstream, workers: workers, to: &cfg, sources: sources)
            if takeover {
                cfg.listenReuse = true
                sources?.note("listen_reuse", "flag --takeover")
            }
            return cfg
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError(source: config ?? "config", line: nil, key: "", message: "\(error)")
        }
    }

    func run() throws {
        let sources = ConfigSources()
        let cfg: ProxyConfig
        do {
            cfg = try loadConfig(sources: sources)
        } catch {
            eprint("etag-proxy: config error: \(error)\n")
            throw ExitCode(2)
        }
        if printConfig {
            print(ConfigKeys.describe(cfg, sources: sources), terminator: "")
            return
        }
        if checkConfig {
            do {
                try Server.checkTLS(cfg)
            } catch {
                eprint("etag-proxy: config error: \(error)\n")
                throw ExitCode(2)
            }
            eprint("etag-proxy: configuration OK (\(config ?? "defaults"))\n")
            return
        }
        Signals.block()
        let server = Server(config: cfg)
        do {
            try server.start()
        } catch {
            eprint("etag-proxy: \(error)\n")
            throw ExitCode(1)
        }
        eprint(startLine(server, cfg))
        if cfg.upstream.isTLS && !cfg.upstreamTLS.verify { eprint(Self.noVerifyWarning) }
        while true {
            let sig = Signals.wait()
            if sig == SIGHUP {
                reload(server)
                continue
            }
            eprint("etag-proxy: signal \(sig), draining (grace \(server.config.timeouts.shutdownGrace) ms)\n")
            break
        }
        server.stop()
        server.wait()
        eprint("etag-proxy: stopped\n")
    }

    static let noVerifyWarning =
        "etag-proxy: WARNING: upstream_tls.verify is false: the upstream's certificate is NOT checked; anyone on the "
        + "path can read and change the traffic\n"

    private func startLine(_ server: Server, _ cfg: ProxyConfig) -> String {
        let admin = cfg.admin.listen.map { "\($0.host.contains(":") ? "[\($0.host)]" : $0.host):\(server.adminPort)" }
        let uring = Server.ioUringStatus(wanted: cfg.ioUring)
        return "etag-proxy \(EtagProxyVersion.string): listening on \(cfg.listen.host):\(server.port), "
            + "upstream \(cfg.upstream), workers \(server.workerCount), admin \(admin ?? "off"), "
            + "cache.ttl \(ConfigValues.durationText(cfg.cache.ttl)), "
            + "if-match \(cfg.concurrency.enforceIfMatch ? "required" : "checked when sent"), io_uring \(uring), "
            + "config \(config ?? "(defaults)")\n"
    }

    /// SIGHUP: the file and the environment again; a bad config keeps the running one.
    private func reload(_ server: Server) {
        let new: ProxyConfig
        do {
            new = try loadConfig()
        } catch {
            eprint("etag-proxy: reload failed, keeping the running config: \(error)\n")
            return
        }
        let old = server.config
        let applied: ProxyConfig
        do {
            applied = try server.reload(new)
        } catch {
            eprint("etag-proxy: reload failed, keeping the running config: \(error)\n")
            return
        }
        if applied.upstream.isTLS && !applied.upstreamTLS.verify { eprint(Self.noVerifyWarning) }
        let changed = ConfigKeys.changes(from: old, to: applied).map { "\($0.key) \($0.old) -> \($0.new)" }
        let skipped = ConfigKeys.changes(from: applied, to: new).map { "\($0.key) \($0.new)" }
        var line = "etag-proxy: reloaded \(config ?? "(defaults)"): "
        line += changed.isEmpty ? "nothing changed" : "changed " + changed.joined(separator: ", ")
        if !skipped.isEmpty { line += "; not applied (restart needed): " + skipped.joined(separator: ", ") }
        eprint(line + "\n")
    }
}

/// `etag-proxy health`: asks the admin listener's `/healthz`, exits 0 when it answers 200 (a container
/// HEALTHCHECK that needs no curl).
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "Exit 0 when the running proxy's admin /healthz answers 200, else 1.")

    /// `etag-proxy --config FILE health`, or `etag-proxy health --config FILE`: the root command's options.
    @ParentCommand var root: EtagProxyCommand

    @Option(name: .long, help: "The admin address HOST:PORT (instead of the config's admin.listen).")
    var admin: String?

    @Option(name: .long, help: "The path to ask.")
    var path = "/healthz"

    @Option(name: .long, help: "Seconds to wait for the answer.")
    var timeout = 3

    func run() throws {
        var address: ListenAddress?
        if let admin {
            address = ConfigValues.listen(admin)
            if address == nil {
                eprint("etag-proxy health: '\(admin)' is not HOST:PORT\n")
                throw ExitCode(2)
            }
        } else {
            do {
                address = try root.loadConfig().admin.listen
            } catch {
                eprint("etag-proxy health: config error: \(error)\n")
                throw ExitCode(2)
            }
            guard address != nil else {
                eprint("etag-proxy health: admin.listen is off\n")
                throw ExitCode(1)
            }
        }
        guard var a = address else { throw ExitCode(1) }
        // A wildcard listener is asked on loopback.
        if a.host == "0.0.0.0" { a.host = "127.0.0.1" }
        if a.host == "::" { a.host = "::1" }
        let status = Server.probeStatus(host: a.host, port: a.port, path: path, timeoutMs: timeout * 1000)
        guard status == 200 else {
            eprint("etag-proxy health: \(a)\(path): \(status < 0 ? "no answer" : "status \(status)")\n")
            throw ExitCode(1)
        }
    }
}

/// One line to stderr in one write.
func eprint(_ s: String) {
    var bytes = Array(s.utf8)
    bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}

EtagProxyCommand.main()

import ArgumentParser
import EtagConfig
import EtagCore
import EtagServer
#if canImport(Glibc)
import Glibc
#endif

/// `etag-proxy --config FILE [--listen HOST:PORT] [--upstream URL] [--workers N] [--check-config]`
struct EtagProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etag-proxy",
        abstract: "A reverse proxy that adds strong ETags, 304s and If-Match checks to an HTTP/JSON API.")

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

    func run() throws {
        var cfg: ProxyConfig
        do {
            cfg = try ConfigLoader.load(file: config)
            try ConfigLoader.applyFlags(listen: listen, upstream: upstream, workers: workers, to: &cfg)
        } catch let e as ConfigError {
            eprint("etag-proxy: config error: \(e)\n")
            throw ExitCode(2)
        }
        if checkConfig {
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
        eprint(
            "etag-proxy: listening on \(cfg.listen.host):\(server.port), upstream \(cfg.upstream), "
                + "workers \(server.workerCount), config \(config ?? "(defaults)")\n")
        let sig = Signals.wait()
        eprint("etag-proxy: signal \(sig), draining (grace \(cfg.timeouts.shutdownGrace) ms)\n")
        server.stop()
        server.wait()
        eprint("etag-proxy: stopped\n")
    }
}

/// One line to stderr in one write.
func eprint(_ s: String) {
    var bytes = Array(s.utf8)
    bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}

EtagProxyCommand.main()

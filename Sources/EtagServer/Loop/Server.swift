internal import CEtagShim
internal import CEtagShm
import EtagCache
import EtagCore
#if canImport(Glibc)
import Glibc
#endif

/// The proxy: `workers` threads, each with its own loop, SO_REUSEPORT listener and upstream pool.
///
/// `start()` binds every listener on the calling thread (so bind errors surface at once and an ephemeral
/// port is shared by all workers), then starts the threads. `stop()` may be called from any thread.
public final class Server: @unchecked Sendable {
    /// The configuration in force: the one started with, then each reload's (restart-only keys unchanged).
    public var config: ProxyConfig { lock.locked { current } }
    private var current: ProxyConfig
    private var workers: [Worker] = []
    private let lock = Mutex()
    private var stopped = false
    public private(set) var port: Int = 0
    public private(set) var cache: SharedCache?
    private var admin: AdminServer?
    private var logSink: AccessLogSink?
    /// `limits.held_memory`, shared by the workers.
    private(set) var heldMemory: HeldMemoryBudget?
    /// Fleet mode's process state (nil without `fleet.redis`).
    private(set) var fleetState: FleetState?
    /// The admin listener's port (0 without one).
    public var adminPort: Int { admin?.boundPort ?? 0 }
    private let stopping = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)

    public init(config: ProxyConfig) {
        current = config
        stopping.initialize(to: 0)
    }

    deinit {
        admin?.stop()
        admin?.join()
        stopping.deallocate()
    }

    /// SIGTERM/SIGINT arrived: the workers drain (`/readyz` says 503). Any thread.
    public var isStopping: Bool { etag_peek64(stopping) != 0 }

    /// Number of worker threads `config.workers` resolves to.
    public var workerCount: Int { config.workers ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Binds and starts the workers.
    /// - Throws: `ServerError` when a listen address cannot be bound. The upstream's name is looked up when
    ///   connecting (`UpstreamResolver`), so one that does not resolve yet is no reason not to start.
    public func start() throws {
        // libuv writes to sockets with write(2)/writev(2), not send(MSG_NOSIGNAL): a write to a connection the peer
        // has closed must be an EPIPE for that connection, never the end of the process (nginx ignores it too). The
        // binary also blocks it in every thread; a server embedded in another process (the tests) relies on this.
        signal(SIGPIPE, SIG_IGN)
        var listenAddr = sockaddr_storage()
        guard etag_parse_ip(config.listen.host, Int32(config.listen.port), &listenAddr) == 0 else {
            throw ServerError.bind(config.listen.description, "not an IP address")
        }
        if !config.listenReuse && config.listen.port != 0 {
            let inUse = withUnsafePointer(to: &listenAddr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { etag_port_in_use($0) }
            }
            if inUse == 1 {
                throw ServerError.bind(
                    config.listen.description,
                    "another process already listens there (set listen_reuse: true or pass --takeover to share it)")
            }
        }
        let settings = ExchangeSettings(config: config, tls: try TLSContexts(config: config))
        let sink = AccessLogSink(target: config.accessLog, limit: config.accessLogBuffer)
        logSink = sink
        sink.start()
        let memo = NotModifiedFieldsMemo()
        let budget = HeldMemoryBudget(limit: config.limits.heldMemory)
        heldMemory = budget
        for i in 0..<workerCount {
            let w = try Worker(
                index: i, config: config, settings: settings, listen: listenAddr,
                accessLog: AccessLog(format: config.accessLogFormat, enabled: config.accessLog != .off, sink: sink),
                notModifiedFields: memo, heldMemory: budget)
            if i == 0 {
                port = w.boundPort
                setPort(&listenAddr, port)
            }
            workers.append(w)
        }
        // Named after binding, so a name derived from an ephemeral port uses the real one.
        let region = try SharedCache(name: Self.regionName(config, port: port), size: config.cache.size)
        let fleet = config.fleet.enabled ? FleetState(config: config) : nil
        fleetState = fleet
        for w in workers {
            w.exchanges.cache = region
            w.exchanges.fleetState = fleet
        }
        cache = region
        if let a = config.admin.listen {
            var addr = sockaddr_storage()
            guard etag_parse_ip(a.host, Int32(a.port), &addr) == 0 else {
                throw ServerError.bind("admin \(a)", "not an IP address")
            }
            admin = try AdminServer(server: self, address: addr, description: a.description)
        }
        for w in workers { w.start() }
        admin?.start()
    }

    /// `cache.name`, or one derived from the listen address ("/etag-proxy-127.0.0.1-8080"), so two unrelated
    /// proxies never share a region while processes listening on the same address do.
    public static func regionName(_ config: ProxyConfig, port: Int) -> String {
        if let n = config.cache.name { return n.hasPrefix("/") ? n : "/" + n }
        let host = config.listen.host.map { $0.isLetter || $0.isNumber || $0 == "." ? $0 : "_" }
        return "/etag-proxy-\(String(host))-\(port)"
    }

    /// Applies `new` to the exchanges that begin next on every worker (SIGHUP), without closing a connection: the
    /// keys that need a new process (`listen`, `workers`, `io_uring`, `cache.name`, `cache.size`,
    /// `admin.listen`, `fleet.*`, `timeouts.redis`) keep their running values. Returns the configuration now in force.
    @discardableResult
    /// - Throws: `TLSSetupError` when a certificate or key cannot be read; the running config stays.
    public func reload(_ new: ProxyConfig) throws -> ProxyConfig {
        let running = config
        var applied = new
        applied.listen = running.listen
        applied.listenReuse = running.listenReuse
        applied.workers = running.workers
        applied.ioUring = running.ioUring
        applied.cache.name = running.cache.name
        applied.cache.size = running.cache.size
        applied.admin.listen = running.admin.listen
        applied.fleet = running.fleet
        applied.timeouts.redis = running.timeouts.redis
        let settings = ExchangeSettings(config: applied, tls: try TLSContexts(config: applied))
        logSink?.setTarget(applied.accessLog, limit: applied.accessLogBuffer)
        heldMemory?.limit = applied.limits.heldMemory
        lock.locked { current = applied }
        for w in workers {
            w.reload(Worker.Reload(config: applied, settings: settings))
        }
        return applied
    }

    /// Reads the certificates and keys a config names, as `start` and `reload` do (`--check-config`).
    public static func checkTLS(_ config: ProxyConfig) throws {
        _ = try TLSContexts(config: config)
    }

    /// Every worker's metric words summed (`MetricsLayout`): one scrape, from any thread.
    public func metricsSnapshot() -> [UInt64] {
        var sum = [UInt64](repeating: 0, count: MetricsLayout.wordCount)
        for w in workers { w.metrics.addTo(&sum) }
        return sum
    }

    /// What a scrape reports besides the workers' words.
    func metricsExtras() -> MetricsExtras {
        MetricsExtras(
            cacheEntries: cache?.liveEntries() ?? 0, cacheCapacity: cache?.slotCount ?? 0,
            process: ProcessReadings.read(), version: EtagProxyVersion.string, heldMemory: heldMemory?.inUse ?? 0,
            heldMemoryLimit: heldMemory?.limit ?? 0, fleetRedisUp: fleetState.map { $0.subscribed ? 1 : 0 })
    }

    /// What each worker saw of the upstream lately.
    func upstreamEvidence() -> [Readiness.Evidence] { workers.map(\.metrics.evidence) }

    /// One counter summed over the workers.
    public func counter(_ c: MetricsLayout.Counter) -> UInt64 { metricsSnapshot()[MetricsLayout.counter(c)] }

    /// Stops accepting on every worker at once; in-flight exchanges get the grace period. Idempotent.
    public func stop() {
        lock.locked {
            guard !stopped else { return }
            stopped = true
            etag_set64(stopping, 1)
            for w in workers { w.requestStop() }
        }
    }

    /// Blocks until every worker thread has ended (call from one thread; a second call returns at once).
    public func wait() {
        for w in workers { w.join() }
        admin?.stop()
        admin?.join()
        logSink?.stop()
    }

    private func setPort(_ addr: inout sockaddr_storage, _ port: Int) {
        let p = in_port_t(UInt16(port).bigEndian)
        withUnsafeMutablePointer(to: &addr) { ptr in
            if ptr.pointee.ss_family == sa_family_t(AF_INET) {
                ptr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port = p }
            } else {
                ptr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port = p }
            }
        }
    }
}

extension Server {
    /// `on`, `off`, or `off (refused: …)` when `io_uring: true` but the kernel refuses it here.
    public static func ioUringStatus(wanted: Bool) -> String {
        guard wanted else { return "off" }
        let rc = etag_io_uring_available()
        return rc == 0 ? "on" : "off (refused: \(String(cString: strerror(rc))))"
    }

    /// A blocking GET for the `health` subcommand: the status, or -1 without an HTTP answer.
    public static func probeStatus(host: String, port: Int, path: String, timeoutMs: Int) -> Int {
        Int(etag_http_status(host, Int32(port), path, Int32(timeoutMs)))
    }
}

/// Blocks SIGINT/SIGTERM/SIGHUP/SIGPIPE in the calling thread and the threads it starts later, and waits for
/// SIGINT, SIGTERM or SIGHUP. For `main`, before `Server.start()`.
public enum Signals {
    public static func block() { etag_block_signals() }
    public static func wait() -> Int32 { etag_wait_signal() }
}

/// A pthread mutex (Foundation-free).
final class Mutex: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}

/// The fields a 304 repeats from its 200 (Cache-Control, Content-Location, Expires, Vary — RFC 9110 §15.4.5),
/// by a digest of their bytes. The shared region holds no header values, only this digest per entry
/// (`CacheEntry.fieldsDigest`); the bytes stay in process memory, shared by this process's workers. A process
/// that finds an entry whose field set it has never seen asks the upstream instead of answering a 304 that
/// would lack them, and learns the set from that answer. Many entries usually share one set.
final class NotModifiedFieldsMemo: @unchecked Sendable {
    private let lock = Mutex()
    private var fields: [UInt64: [UInt8]] = [:]
    private let limit: Int

    init(limit: Int = 50_000) { self.limit = limit }

    /// The field set stored under `digest`; nil when this process does not know it.
    func get(_ digest: UInt64) -> [UInt8]? {
        lock.locked { fields[digest] }
    }

    /// Remembers a field set and returns its digest (0 for an empty set, which needs no memory).
    func remember(_ value: [UInt8], hasher: SHA1Hasher) -> UInt64 {
        guard !value.isEmpty else { return 0 }
        let digest = hasher.hash(value).a | 1  // never 0
        lock.locked {
            guard fields[digest] == nil else { return }
            if fields.count >= limit { fields.removeAll(keepingCapacity: true) }
            fields[digest] = value
        }
        return digest
    }
}

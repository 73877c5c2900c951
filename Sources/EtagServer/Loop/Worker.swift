internal import CLibUV
internal import CEtagShim
import EtagCache
import EtagCore
import EtagHTTP
#if canImport(Glibc)
import Glibc
#endif

/// One worker: a thread running its own `uv_loop`, with its own SO_REUSEPORT listener, client connections
/// and upstream pool.
///
/// Threads: created and bound on the starting thread (before its thread runs); from then on everything
/// here is touched only by the worker's thread, except `requestStop()`, which only calls `uv_async_send`.
final class Worker: @unchecked Sendable {
    let index: Int
    /// Replaced by a reload (SIGHUP) on this worker's thread; the restart-only keys never change. Read many times
    /// per exchange and only ever assigned whole on the worker's thread, so their dynamic exclusivity checks are
    /// left out (each costs ~80-200 instructions).
    @exclusivity(unchecked) private(set) var config: ProxyConfig
    @exclusivity(unchecked) private(set) var settings: ExchangeSettings
    /// Counts changes of the upstream by reloads: a connection made to an earlier one is never pooled again.
    private(set) var upstreamGeneration = 0
    let loop: UnsafeMutablePointer<uv_loop_t>
    /// Where plaintext sockets read into when they hold nothing pending (`TCPConnection.allocate`): reads of up to
    /// `readSize` bytes into a `malloc`'d block of `readAllocation`, whose slack lets a held body that arrives
    /// with its head in one read stay where it was read (`handOverReadBuffer`). Replaced only by that hand-over,
    /// on this worker's thread, between uses: no dynamic exclusivity check (one per read otherwise).
    @exclusivity(unchecked) private(set) var readBuffer: UnsafeMutableRawBufferPointer
    static let readSize = 64 * 1024
    static let readAllocation = 80 * 1024
    private let listener: UnsafeMutablePointer<uv_tcp_t>
    private let stopSignal: UnsafeMutablePointer<uv_async_t>
    private let graceTimer: UnsafeMutablePointer<uv_timer_t>
    private let reloadSignal: UnsafeMutablePointer<uv_async_t>
    /// A reload handed over by another thread, applied on this worker's thread (under `reloadLock`).
    private var pendingReload: Reload?
    private let reloadLock = Mutex()
    lazy var pool = UpstreamPool(worker: self)
    /// The upstream's address, looked up when connecting; replaced by a reload that changes the upstream.
    lazy var resolver = UpstreamResolver(
        loop: loop, host: config.upstream.host, port: config.upstream.port, ttlMs: config.upstreamResolveTTL)
    /// The upstream TLS session new upstream connections resume.
    let upstreamSessions = TLSSessionCache()
    /// What this worker's exchanges share (cache, flights, leases, hashers…); the worker only owns it.
    let exchanges: ExchangeContext
    /// This worker's counters and upstream health, read by the admin thread.
    let metrics: WorkerMetrics
    private let metricsMemory = MetricsMemory()
    /// Small client writes held until the loop is about to poll again, and the handle that sends them.
    let deferredWrites: DeferredWrites
    private let flushHandle: UnsafeMutablePointer<uv_prepare_t>
    private(set) var draining = false
    private var listening = true
    private var clients: [ObjectIdentifier: ClientConnection] = [:]
    private var thread: pthread_t? = nil

    /// Binds the listener on this worker's loop. `port` 0 binds an ephemeral port; no `listen` address, no
    /// listener (the socket-free driver hands the worker its connections through `adopt`).
    init(
        index: Int, config: ProxyConfig, settings: ExchangeSettings, listen: sockaddr_storage?,
        accessLog: AccessLog, notModifiedFields: NotModifiedFieldsMemo, heldMemory: HeldMemoryBudget? = nil
    ) throws {
        self.index = index
        self.config = config
        self.settings = settings
        deferredWrites = DeferredWrites(useIOUring: config.ioUring)
        metrics = WorkerMetrics(metricsMemory)
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
        exchanges = ExchangeContext(
            loop: loop, settings: settings, accessLog: accessLog, metrics: metrics,
            notModifiedFields: notModifiedFields,
            heldMemory: HeldMemoryCredit(budget: heldMemory ?? HeldMemoryBudget(limit: config.limits.heldMemory)))
        readBuffer = Worker.newReadBuffer()
        listener = .allocate(capacity: 1)
        stopSignal = .allocate(capacity: 1)
        graceTimer = .allocate(capacity: 1)
        reloadSignal = .allocate(capacity: 1)
        flushHandle = .allocate(capacity: 1)
        let me = Unmanaged.passUnretained(self).toOpaque()
        if var addr = listen {
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { etag_tcp_bind_reuseport(loop, listener, $0) }
            }
            if rc == 0 { uv_tcp_nodelay(listener, 1) }
            let listenRC = rc == 0 ? uv_listen(etag_uv_stream(listener), 1024, onConnectionCallback) : rc
            guard listenRC == 0 else { throw ServerError.bind(config.listen.description, UVError.name(listenRC)) }
            listener.pointee.data = me
        } else {
            listening = false
        }
        uv_async_init(loop, stopSignal, onStopSignal)
        stopSignal.pointee.data = me
        uv_timer_init(loop, graceTimer)
        graceTimer.pointee.data = me
        uv_async_init(loop, reloadSignal, onReloadSignal)
        reloadSignal.pointee.data = me
        uv_unref(etag_uv_handle(reloadSignal))
        // Prepare handles run right before the loop polls, after every callback that may have written.
        uv_prepare_init(loop, flushHandle)
        flushHandle.pointee.data = me
        uv_prepare_start(flushHandle, onFlushPrepare)
        uv_unref(etag_uv_handle(flushHandle))
    }

    /// The port the listener is bound to.
    var boundPort: Int { Int(etag_tcp_local_port(listener)) }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        pthread_create(&t, nil, workerThreadMain, box)
        thread = t
    }

    /// Waits for the thread to end; a second call returns at once.
    func join() {
        if let t = thread {
            thread = nil
            pthread_join(t, nil)
        }
    }

    /// Asks the worker to drain and stop; safe from any thread.
    func requestStop() {
        uv_async_send(stopSignal)
    }

    func run() {
        exchanges.startFleet(subscribe: index == 0)
        uv_run(loop, UV_RUN_DEFAULT)
        loopClosed = uv_loop_close(loop) == 0
    }

    /// Whether the loop ended with every handle closed, so the handles' memory is no longer libuv's.
    private var loopClosed = false

    private static func newReadBuffer() -> UnsafeMutableRawBufferPointer {
        guard let p = malloc(readAllocation) else { fatalError("out of memory for a worker's read buffer") }
        return UnsafeMutableRawBufferPointer(start: p, count: readSize)
    }

    /// Gives the read buffer, and the bytes just read into it, to a held body (`HeldBytes.adopt`, which frees it)
    /// and takes a new one: the body is not copied out of it. Returns the buffer and its allocated size.
    func handOverReadBuffer() -> (UnsafeMutableRawPointer, Int) {
        let old = readBuffer.baseAddress!
        readBuffer = Worker.newReadBuffer()
        return (old, Worker.readAllocation)
    }

    deinit {
        free(readBuffer.baseAddress)
        // A loop that never ran (or still holds a handle) keeps its memory: leaked rather than freed under libuv.
        guard loopClosed else { return }
        listener.deallocate()
        stopSignal.deallocate()
        graceTimer.deallocate()
        reloadSignal.deallocate()
        flushHandle.deallocate()
        loop.deallocate()
    }

    // MARK: connections

    func accept() {
        let client = ClientConnection(worker: self)
        guard uv_accept(etag_uv_stream(listener), client.stream) == 0 else {
            client.close()
            return
        }
        serveAccepted(client)
    }

    private func serveAccepted(_ client: ClientConnection) {
        if let context = settings.tls.listener {
            guard let t = TLSChannel(server: context) else { return client.close() }
            client.tls = t  // the header timeout, armed by `start`, covers the handshake
        }
        adopt(client)
    }

    /// Takes the connections still queued on this worker's socket, before it closes: closing a SO_REUSEPORT
    /// socket resets every connection waiting in its queue, which would fail clients during a takeover (the
    /// new process has its own socket on the port by then, so nothing queues here after this).
    private func acceptBacklog() {
        var fd: uv_os_fd_t = -1
        guard listening, uv_fileno(etag_uv_handle(listener), &fd) == 0 else { return }
        while clients.count < config.limits.maxConnections {
            let s = Glibc.accept(fd, nil, nil)  // the listening socket is non-blocking; uv_tcp_open makes s so
            if s < 0 { return }
            let client = ClientConnection(worker: self)
            guard uv_tcp_open(client.tcp, s) == 0 else {
                Glibc.close(s)
                client.close()
                continue
            }
            serveAccepted(client)
        }
    }

    /// Serves a connection accepted here (or made by the socket-free driver): refused at once while draining or
    /// over `limits.max_connections`.
    func adopt(_ client: ClientConnection) {
        if draining || clients.count >= config.limits.maxConnections {
            client.close()
            return
        }
        clients[ObjectIdentifier(client)] = client
        metrics.set(.clientConnections, clients.count)
        client.start()
    }

    func clientClosed(_ c: ClientConnection) {
        clients.removeValue(forKey: ObjectIdentifier(c))
        metrics.set(.clientConnections, clients.count)
        if draining && clients.isEmpty { finish() }
    }

    // MARK: reload

    struct Reload {
        let config: ProxyConfig
        let settings: ExchangeSettings
    }

    /// Hands a new configuration to this worker; it applies it to the exchanges that begin next. Any thread.
    func reload(_ r: Reload) {
        reloadLock.locked { pendingReload = r }
        uv_async_send(reloadSignal)
    }

    fileprivate func applyReload() {
        guard
            let r = reloadLock.locked({ () -> Reload? in
                defer { pendingReload = nil }
                return pendingReload
            })
        else { return }
        let upstreamChanged = r.config.upstream != config.upstream
        config = r.config
        settings = r.settings
        exchanges.apply(r.settings, accessLogFormat: r.config.accessLogFormat, logging: r.config.accessLog != .off)
        if upstreamChanged {
            // Connections to the old upstream are not reused; those in use finish their exchange.
            resolver = UpstreamResolver(
                loop: loop, host: r.config.upstream.host, port: r.config.upstream.port,
                ttlMs: r.config.upstreamResolveTTL)
            upstreamGeneration += 1
            pool.closeIdle()
        }
    }

    // MARK: shutdown

    /// Stops accepting at once, closes idle connections, lets in-flight exchanges finish within the grace period.
    func beginDrain() {
        guard !draining else { return }
        acceptBacklog()
        draining = true
        closeListener()
        pool.closeIdle()
        for c in Array(clients.values) { c.drain() }
        if clients.isEmpty {
            finish()
        } else {
            uv_timer_start(graceTimer, onGraceTimer, UInt64(max(config.timeouts.shutdownGrace, 1)), 0)
        }
    }

    func graceExpired() {
        for c in Array(clients.values) { c.close() }
    }

    private func closeListener() {
        guard listening else { return }
        listening = false
        uv_close(etag_uv_handle(listener), nil)
    }

    private var finished = false

    private func finish() {
        guard !finished else { return }
        finished = true
        pool.closeIdle()
        uv_close(etag_uv_handle(stopSignal), nil)
        uv_close(etag_uv_handle(graceTimer), nil)
        uv_close(etag_uv_handle(reloadSignal), nil)
        exchanges.accessLog.flush(metrics)
        exchanges.close()
        uv_close(etag_uv_handle(flushHandle), nil)
    }

    // MARK: per-loop helpers

    /// Right before the loop polls: the answers held during this iteration, and its access-log lines.
    func flushOutput() {
        deferredWrites.flush()
        if exchanges.logging { exchanges.accessLog.flush(metrics) }
    }

    var now: UInt64 { uv_now(loop) }

}

func workerThreadMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let w = Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue()
    w.run()
    return nil
}

private func onConnectionCallback(_ server: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
    guard status == 0 else { return }
    Unmanaged<Worker>.fromOpaque(server!.pointee.data).takeUnretainedValue().accept()
}

private func onStopSignal(_ h: UnsafeMutablePointer<uv_async_t>?) {
    Unmanaged<Worker>.fromOpaque(h!.pointee.data).takeUnretainedValue().beginDrain()
}

private func onFlushPrepare(_ h: UnsafeMutablePointer<uv_prepare_t>?) {
    Unmanaged<Worker>.fromOpaque(h!.pointee.data).takeUnretainedValue().flushOutput()
}

private func onReloadSignal(_ h: UnsafeMutablePointer<uv_async_t>?) {
    Unmanaged<Worker>.fromOpaque(h!.pointee.data).takeUnretainedValue().applyReload()
}

private func onGraceTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<Worker>.fromOpaque(h!.pointee.data).takeUnretainedValue().graceExpired()
}

public enum ServerError: Error, CustomStringConvertible {
    case bind(String, String)
    case resolve(String)

    public var description: String {
        switch self {
        case .bind(let a, let e): return "cannot listen on \(a): \(e)"
        case .resolve(let h): return "cannot resolve upstream host \(h)"
        }
    }
}

enum UVError {
    static func name(_ code: Int32) -> String {
        String(cString: uv_strerror(code))
    }
}

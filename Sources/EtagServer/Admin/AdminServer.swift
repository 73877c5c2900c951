internal import CLibUV
internal import CEtagShim
import EtagCore
import EtagHTTP
#if canImport(Glibc)
import Glibc
#endif

/// The admin listener (`admin.listen`): `/healthz`, `/readyz` and `/metrics` on a thread and loop of its own, so
/// neither the load nor the client limits of the proxy port reach it, and it keeps answering while the workers
/// drain. One request per connection (the answer closes it); a head not complete within 10 s, or larger than
/// 8 KiB, closes the connection.
///
/// Threads and handles: created and bound on the starting thread (bind errors surface at start); from then on
/// the loop, its handles and the connections are touched only by the admin thread, except `stop()`, which only
/// calls `uv_async_send`. It reads the workers' metrics and health words with relaxed loads (`WorkerMetrics`).
/// The server owns it and joins its thread before letting it go.
final class AdminServer: @unchecked Sendable {
    unowned(unsafe) let server: Server  // owns this admin server and outlives its thread
    let loop: UnsafeMutablePointer<uv_loop_t>
    private let listener: UnsafeMutablePointer<uv_tcp_t>
    private let stopSignal: UnsafeMutablePointer<uv_async_t>
    private let sweepTimer: UnsafeMutablePointer<uv_timer_t>
    let readBuffer: UnsafeMutableRawBufferPointer
    private(set) var boundPort = 0
    private var connections: [ObjectIdentifier: AdminConnection] = [:]
    private var thread: pthread_t?
    /// The readiness probe: the admin's own evidence, and the requests waiting for a probe under way.
    private var probeEvidence = Readiness.Evidence()
    private var probe: UpstreamProbe?
    private var awaitingProbe: [AdminConnection] = []
    /// The admin's own lookup of the upstream's name (renewed when a reload changes the upstream).
    private var resolver: UpstreamResolver?
    private var dateSecond = -1
    private var dateBytes: [UInt8] = []

    init(server: Server, address: sockaddr_storage, description: String) throws {
        self.server = server
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
        listener = .allocate(capacity: 1)
        stopSignal = .allocate(capacity: 1)
        sweepTimer = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: 16 * 1024, alignment: 16)
        let me = Unmanaged.passUnretained(self).toOpaque()
        uv_tcp_init(loop, listener)
        listener.pointee.data = me
        var addr = address
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(listener, $0, 0) }
        }
        let listenRC = rc == 0 ? uv_listen(etag_uv_stream(listener), 128, onAdminConnection) : rc
        uv_async_init(loop, stopSignal, onAdminStop)
        stopSignal.pointee.data = me
        uv_timer_init(loop, sweepTimer)
        sweepTimer.pointee.data = me
        guard listenRC == 0 else {
            closeHandles()
            uv_run(loop, UV_RUN_DEFAULT)
            throw ServerError.bind("admin \(description)", UVError.name(listenRC))
        }
        boundPort = Int(etag_tcp_local_port(listener))
        uv_timer_start(sweepTimer, onAdminSweep, 1000, 1000)
    }

    deinit {
        uv_loop_close(loop)
        loop.deallocate()
        listener.deallocate()
        stopSignal.deallocate()
        sweepTimer.deallocate()
        readBuffer.deallocate()
    }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        pthread_create(&t, nil, adminThreadMain, box)
        thread = t
    }

    /// Closes the listener and every connection, ending the thread; safe from any thread.
    func stop() { uv_async_send(stopSignal) }

    func join() {
        if let t = thread {
            thread = nil
            pthread_join(t, nil)
        }
    }

    fileprivate func run() { uv_run(loop, UV_RUN_DEFAULT) }

    fileprivate func closeHandles() {
        for c in Array(connections.values) { c.close() }
        probe?.cancel()
        for h in [etag_uv_handle(listener), etag_uv_handle(stopSignal), etag_uv_handle(sweepTimer)] {
            if uv_is_closing(h) == 0 { uv_close(h, nil) }
        }
    }

    // MARK: connections

    fileprivate func accept() {
        let c = AdminConnection(admin: self, startMs: uv_now(loop))
        guard uv_accept(etag_uv_stream(listener), c.stream) == 0 else { return c.close() }
        connections[ObjectIdentifier(c)] = c
        c.startReading()
    }

    func closed(_ c: AdminConnection) {
        connections.removeValue(forKey: ObjectIdentifier(c))
        awaitingProbe.removeAll { $0 === c }
    }

    /// Closes connections whose request did not arrive within 10 s.
    fileprivate func sweep() {
        let now = uv_now(loop)
        for c in Array(connections.values) where !c.answered && now &- c.startMs > 10_000 { c.close() }
    }

    var date: [UInt8] {
        let now = time(nil)
        if now != dateSecond {
            dateSecond = now
            dateBytes = HTTPDate.format(epochSeconds: now)
        }
        return dateBytes
    }

    // MARK: answers

    func serve(_ endpoint: AdminRoutes.Endpoint, headOnly: Bool, on c: AdminConnection) {
        switch endpoint {
        case .healthz:
            c.answer(200, "text/plain; charset=utf-8", Array("ok\n".utf8), headOnly: headOnly)
        case .metrics:
            let body = MetricsExposition.render(server.metricsSnapshot(), server.metricsExtras())
            c.answer(200, MetricsExposition.contentType, body, headOnly: headOnly)
        case .readyz:
            readiness(c, headOnly: headOnly, probed: false)
        }
    }

    private func readiness(_ c: AdminConnection, headOnly: Bool, probed: Bool) {
        uv_update_time(loop)
        let evidence = Readiness.Evidence.combine(server.upstreamEvidence() + [probeEvidence])
        let verdict = Readiness.decide(
            draining: server.isStopping, evidence: evidence, nowMs: uv_now(loop),
            unreadyAfterMs: UInt64(server.config.admin.unreadyAfter), probed: probed, failure: UVError.name)
        switch verdict {
        case .ready:
            let fleet =
                server.fleetState.map {
                    "\n" + FleetPolicy.readinessNote($0.config.onRedisDown, subscribed: $0.subscribed)
                } ?? ""
            c.answer(200, "text/plain; charset=utf-8", Array("ready\(fleet)\n".utf8), headOnly: headOnly)
        case .notReady(let reason):
            c.answer(503, "text/plain; charset=utf-8", Array((reason + "\n").utf8), headOnly: headOnly)
        case .probe:
            c.headOnly = headOnly
            awaitingProbe.append(c)
            if probe == nil { startProbe() }
        }
    }

    /// Connects to the upstream once (within `timeouts.connect`), then answers every waiting `/readyz`.
    private func startProbe() {
        let p = UpstreamProbe(loop: loop, timeoutMs: server.config.timeouts.connect) { [unowned self] code in
            probe = nil
            let now = uv_now(loop)
            if code == 0 {
                probeEvidence = Readiness.Evidence(reachedMs: now)
            } else {
                if probeEvidence.failingSinceMs == 0 { probeEvidence.failingSinceMs = now }
                probeEvidence.failureCode = code
            }
            let waiting = awaitingProbe
            awaitingProbe = []
            for c in waiting where !c.answered { readiness(c, headOnly: c.headOnly, probed: true) }
        }
        probe = p
        let upstream = server.config.upstream
        if resolver?.host != upstream.host || resolver?.port != upstream.port {
            resolver = UpstreamResolver(
                loop: loop, host: upstream.host, port: upstream.port, ttlMs: server.config.upstreamResolveTTL)
        }
        switch resolver!.resolve({ answer in
            switch answer {
            case .address(let a): p.start(a)
            case .failed(let code): p.report(code)
            }
        }) {
        case .now(let a): p.start(a)
        case .failedRecently(let code): p.report(code)
        case .later: break
        }
    }
}

private func adminThreadMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let a = Unmanaged<AdminServer>.fromOpaque(arg!).takeRetainedValue()
    a.run()
    return nil
}

private func onAdminConnection(_ server: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
    guard status == 0 else { return }
    Unmanaged<AdminServer>.fromOpaque(server!.pointee.data).takeUnretainedValue().accept()
}

private func onAdminStop(_ h: UnsafeMutablePointer<uv_async_t>?) {
    Unmanaged<AdminServer>.fromOpaque(h!.pointee.data).takeUnretainedValue().closeHandles()
}

private func onAdminSweep(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<AdminServer>.fromOpaque(h!.pointee.data).takeUnretainedValue().sweep()
}

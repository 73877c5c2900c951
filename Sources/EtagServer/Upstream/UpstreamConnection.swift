internal import CLibUV
import EtagCore
import EtagHTTP

/// The upstream HTTP/1.1 client: one keep-alive connection that sends a request, parses the response itself
/// (RFC 9112 §4, §6), delimits and delivers its body, enforces the connect and response timeouts and replays a
/// request once on a fresh connection when a pooled one turns out closed. It reports to its delegate — the
/// exchange that started it — and goes back to its worker's `UpstreamPool` by itself when a response ends
/// cleanly.
///
/// Ownership: the libuv handles retain the connection (see `TCPConnection`); the pool holds it while idle; an
/// exchange holds it while in use. The delegate is `unowned(unsafe)`: every delegate calls `detach()` before it
/// goes away, and the connection drops it before reporting the end of the exchange. Worker thread only.
final class UpstreamConnection: TCPConnection {
    private enum State { case fresh, connecting, connected }
    private enum TimerPurpose { case connect, response, idle }

    private unowned(unsafe) var delegate: (any UpstreamClientDelegate)?
    private var state = State.fresh
    private var timerPurpose = TimerPurpose.connect
    /// A failure found while starting to connect, reported from the timer on the next loop turn.
    private var connectFailure: UpstreamFailure?
    private var pendingUntilConnected: [UInt8] = []
    /// Exchanges completed on this connection (0: fresh).
    private(set) var exchanges = 0
    var inPool = false
    /// The worker's `upstreamGeneration` when this connection was made.
    private(set) var upstreamGeneration = 0

    // The exchange in progress.
    private var method = HTTPMethod.get
    /// What the exchange sends this request for, and since when (`uv_hrtime`), for the metrics.
    private var kind = MetricsLayout.UpstreamKind.forward
    private var sentAt: UInt64 = 0
    /// The whole request, kept while a replay on a fresh connection is still possible (RFC 9112 §9.3.1).
    private var replayable: [UInt8]?
    /// A GET sent right behind this exchange's request (`Refetch.pipelines`): its answer follows this one's.
    private var pipelined: [UInt8]?
    /// That GET once this exchange's answer has ended on a reusable connection: offered, while the delegate hears
    /// of the end, to the exchange that sends that very GET (`UpstreamPool.takePipelined`); closed if none does.
    private(set) var offered: [UInt8]?
    private var requestComplete = true
    private var receivedResponseBytes = false
    /// Whether the final response head has arrived, and whether it lets the connection be reused.
    private var hasResponse = false
    /// Bytes of 1xx interim heads before this response's final head (bounded like one head).
    private var interimBytes = 0
    private var responseKeepAlive = false
    /// `decoder` and `storage` are passed `inout` only to the pure parsers, which cannot reach the connection:
    /// no dynamic exclusivity check.
    @exclusivity(unchecked) private var decoder = BodyDecoder(response: .none, maxTrailerSize: 0)
    private var mode = UpstreamBodyMode.stream
    /// Memory for response heads, reused from exchange to exchange (see `FieldBlock.refill`).
    @exclusivity(unchecked) private var storage = FieldBlock.empty

    private var settings: ExchangeSettings { worker.settings }

    init(worker: Worker) {
        super.init(worker: worker)
        worker.pool.connectionOpened()
    }

    /// Starts an exchange: sends `request` (the head, with the whole body when `complete`).
    /// - Parameters:
    ///   - method: the method sent (decides whether the response has a body, RFC 9112 §6.3).
    ///   - replayable: an idempotent request sent whole, which may be replayed once on a fresh connection
    ///     (RFC 9110 §9.2.2).
    ///   - kind: what the exchange sends it for (the metrics' `kind` label).
    ///   - pipelined: a GET sent in the same write right behind a complete `request` (HTTP/1.1 pipelining,
    ///     RFC 9112 §9.3.2); its answer is offered when this exchange ends (`offered`).
    func begin(
        _ request: [UInt8], method: HTTPMethod, replayable: Bool, complete: Bool,
        kind: MetricsLayout.UpstreamKind, delegate: any UpstreamClientDelegate, pipelined: [UInt8]? = nil
    ) {
        self.delegate = delegate
        self.method = method
        self.kind = kind
        sentAt = uv_hrtime()
        self.replayable = replayable && complete ? request : nil
        requestComplete = complete
        self.pipelined = complete ? pipelined : nil
        receivedResponseBytes = false
        hasResponse = false
        interimBytes = 0
        mode = .stream
        switch state {
        case .fresh: connect()
        case .connecting: break
        case .connected: arm(.response, settings.timeouts.upstream)
        }
        request.withUnsafeBytes { r in
            if let next = self.pipelined { next.withUnsafeBytes { send(r, $0) } } else { send(r) }
        }
    }

    /// Takes the answer to the pipelined GET this connection offers (`offered`): it is the next response, read
    /// for `delegate` as if `begin` had sent the GET now.
    func takeOffered(kind: MetricsLayout.UpstreamKind, delegate: any UpstreamClientDelegate) {
        guard let request = offered else { return }
        offered = nil
        self.delegate = delegate
        method = .get
        self.kind = kind
        sentAt = uv_hrtime()
        replayable = request  // a GET: replayed on a fresh connection if this one closes before its answer
        requestComplete = true
        receivedResponseBytes = false
        hasResponse = false
        interimBytes = 0
        mode = .stream
        arm(.response, settings.timeouts.upstream)
    }

    /// More request body (chunk-framed when `chunked`).
    func sendBody(_ data: UnsafeRawBufferPointer, chunked: Bool) {
        guard data.count > 0 else { return }
        if chunked {
            ChunkedEncoder.header(data.count).withUnsafeBytes { h in
                ChunkedEncoder.crlf.withUnsafeBytes { send(h, data, $0) }
            }
        } else {
            send(data)
        }
        arm(.response, settings.timeouts.upstream)
    }

    /// The request body is complete.
    func endBody(chunked: Bool) {
        if chunked { ChunkedEncoder.last.withUnsafeBytes { send($0) } }
        requestComplete = true
    }

    /// Request bytes the socket has not taken yet (for back-pressure).
    var backlog: Int { queuedBytes + pendingUntilConnected.count }

    /// The exchange no longer wants the response: the delegate is dropped and the connection closed (its
    /// stream position is unknown, so it cannot be reused).
    func detach() {
        delegate = nil
        close()
    }

    /// Reads again after a delegate paused a streamed body.
    func resume() {
        guard delegate != nil, !isClosing else { return }
        startReading()
        processBuffered()
    }

    // MARK: connecting

    private func connect() {
        state = .connecting
        upstreamGeneration = worker.upstreamGeneration
        if let upstream = worker.pool.memoryUpstream {
            // The socket-free driver's upstream: connected (or refused) on the next loop turn, like a socket.
            memoryPeer = upstream.accept(self)
            if memoryPeer == nil { connectFailure = .unreachable(UV_ECONNREFUSED.rawValue) }
            arm(.connect, 0)
            return
        }
        // The connect timeout covers the lookup too.
        arm(.connect, settings.timeouts.connect)
        switch worker.resolver.resolve({ [self] answer in
            guard !isClosing, state == .connecting else { return }
            switch answer {
            case .address(let a): connect(to: a)
            case .failed(let code): fail(.unresolved(code))
            }
        }) {
        case .now(let a): connect(to: a)
        case .failedRecently(let code):
            connectFailure = .unresolved(code)
            arm(.connect, 0)
        case .later: break
        }
    }

    private func connect(to address: sockaddr_storage) {
        var address = address
        let req = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_tcp_nodelay(tcp, 1)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_connect(req, tcp, $0, onUpstreamConnect) }
        }
        if rc != 0 {
            req.deallocate()
            connectFailure = .unreachable(rc)  // reported on the next loop turn, never inside `begin`
            arm(.connect, 0)
        }
    }

    fileprivate func didConnect(_ status: Int32) {
        guard !isClosing else { return }
        guard status == 0 else { return fail(.unreachable(status)) }
        if let context = settings.tls.upstream {
            // https: connected once the handshake completes, within the same connect timeout.
            guard
                let t = TLSChannel(
                    client: context, serverName: settings.upstreamServerName, sessions: worker.upstreamSessions)
            else { return fail(.tls("OpenSSL cannot make a connection: \(TLSContext.lastError())")) }
            tls = t
            startReading()
            switch t.handshake() {
            case .wantMore: flushTLS(t)
            case .failed(let detail): fail(.tls(detail))
            case .done: tlsHandshakeCompleted()
            }
            return
        }
        becameConnected()
    }

    override func tlsHandshakeCompleted() {
        worker.metrics.add(tls?.resumed == true ? .upstreamTLSResumed : .upstreamTLSFull)
        becameConnected()
    }

    override func tlsFailed(_ detail: String) {
        if state == .connecting { worker.metrics.add(.upstreamTLSFailed) }
        fail(.tls(detail))
    }

    /// The TCP connection (and its TLS handshake) is up: the request waiting for it goes out.
    private func becameConnected() {
        worker.metrics.upstreamReached(nowMs: worker.now)
        state = .connected
        startReading()
        arm(.response, settings.timeouts.upstream)
        if !pendingUntilConnected.isEmpty {
            let bytes = pendingUntilConnected
            pendingUntilConnected = []
            write(bytes)
            // Fully written at once: no write callback will report the drain.
            if queuedBytes == 0 && !isClosing { didDrain() }
        }
    }

    private func send(
        _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = .empty,
        _ c: UnsafeRawBufferPointer = .empty
    ) {
        if state == .connected {
            write(a, b, c)
        } else {
            pendingUntilConnected.append(contentsOf: a)
            pendingUntilConnected.append(contentsOf: b)
            pendingUntilConnected.append(contentsOf: c)
        }
    }

    private func arm(_ purpose: TimerPurpose, _ ms: Int) {
        timerPurpose = purpose
        startTimer(ms)
    }

    // MARK: the response

    override func consume(_ buf: UnsafeRawBufferPointer) -> Int {
        guard let d = delegate else {
            // Bytes on an idle connection: the upstream is confused; do not reuse it.
            close()
            return buf.count
        }
        // The delegate may end its exchange (and drop its last reference) inside any callback.
        return withExtendedLifetime(d) { consumeResponse(buf, d) }
    }

    private func consumeResponse(_ buf: UnsafeRawBufferPointer, _ d: any UpstreamClientDelegate) -> Int {
        receivedResponseBytes = true
        var off = 0
        if !hasResponse {
            while true {
                let rest = UnsafeRawBufferPointer(rebasing: buf[off...])
                do {
                    switch try ResponseParser.parse(
                        rest, requestMethod: method, limits: settings.responseLimits, storage: &storage
                    ) {
                    case .incomplete:
                        arm(.response, settings.timeouts.upstream)
                        return off
                    case .complete(let head, let used):
                        off += used
                        if head.isInterim {  // RFC 9110 §15.2: the final response follows
                            // …within limits.max_upstream_header_size of interim heads: a flood of them (an
                            // upstream that keeps a connection busy without ever answering) is refused.
                            interimBytes += used
                            guard interimBytes <= settings.responseLimits.maxHeadSize else {
                                fail(.broken("more 1xx interim responses than limits.max_upstream_header_size"))
                                return buf.count
                            }
                            continue
                        }
                        if head.status == 101 {
                            fail(.broken("the upstream switched protocols, which this proxy does not relay"))
                            return buf.count
                        }
                        hasResponse = true
                        worker.metrics.add(MetricsLayout.upstreamRequest(kind, status: head.status))
                        responseKeepAlive = head.keepAlive
                        decoder = BodyDecoder(
                            response: head.framing, maxTrailerSize: settings.responseLimits.maxTrailerSize)
                        arm(.response, settings.timeouts.upstream)
                        mode = d.upstreamReceivedHead(head)
                        if case .hold(let held) = mode, !isClosing { adoptReadBuffer(buf, bodyStart: off, held) }
                    }
                } catch {
                    fail(.broken(error.detail))
                    return buf.count
                }
                break
            }
            if isClosing { return buf.count }  // the delegate detached
        }
        while true {
            let event: BodyEvent
            do {
                (event, off) = try decoder.next(buf, at: off)
            } catch {
                fail(.broken(error.detail))
                return buf.count
            }
            switch event {
            case .data(let r):
                let more = deliver(UnsafeRawBufferPointer(rebasing: buf[r]), to: d)
                if isClosing { return buf.count }
                if !more {
                    stopReading()
                    return off
                }
            case .needMore:
                arm(.response, settings.timeouts.upstream)
                d.upstreamAwaitsBody()
                return off
            case .end:
                finish(reusable: buf.count == off)
                // The answer to a pipelined GET may follow in the same bytes, for the exchange that took it.
                if let next = delegate, !isClosing, off < buf.count {
                    let rest = UnsafeRawBufferPointer(rebasing: buf[off...])
                    return off + withExtendedLifetime(next) { consumeResponse(rest, next) }
                }
                return buf.count
            }
        }
    }

    /// A held, length-delimited body is read straight into its storage: the read is capped at what is left of
    /// the body, so no byte of a later response can land there (RFC 9112 §6.3 item 6 delimits it).
    override func readInPlace() -> (UnsafeMutableRawBufferPointer, AnyObject)? {
        guard case .hold(let held) = mode, hasResponse, let left = bodyLeft, left >= UpstreamConnection.inPlaceMinimum,
            let space = held.readSpace(bodyLeft: left)
        else { return nil }
        // No larger than the worker's buffer: the body is hashed per read, and a read as large as the socket
        // holds would keep the loop from other connections for a whole large body's hash.
        return (UnsafeMutableRawBufferPointer(rebasing: space.prefix(worker.readBuffer.count)), held.bytes)
    }

    /// A held, length-delimited body of some size whose head came in the worker's read buffer: that buffer,
    /// holding the body's first bytes, becomes the body's storage (they are not copied out of it), and the worker
    /// takes a new one.
    private func adoptReadBuffer(_ buf: UnsafeRawBufferPointer, bodyStart off: Int, _ held: HeldBody) {
        let shared = worker.readBuffer
        guard let left = bodyLeft, left >= UpstreamConnection.adoptMinimum,
            let b = buf.baseAddress, let r = shared.baseAddress,
            b >= UnsafeRawPointer(r), b + buf.count <= UnsafeRawPointer(r) + shared.count,
            held.canAdopt(bodyLength: left)
        else { return }
        let (buffer, allocated) = worker.handOverReadBuffer()
        held.bytes.adopt(buffer, allocated: allocated, bodyStart: (b - UnsafeRawPointer(r)) + off, expected: left)
        keepUntilConsumed(held.bytes)
    }

    /// What is left of a length-delimited body (nil for chunked and close-delimited ones).
    private var bodyLeft: Int? { decoder.remainingLength.map { Int(truncatingIfNeeded: min($0, UInt64(Int.max))) } }

    /// Below this, copying the first read's share of a body costs less than the buffer handed over for it (and
    /// a small body would hold a whole read buffer).
    private static let adoptMinimum = 32 * 1024

    /// Below this, a read into the worker's buffer and a copy cost less than a read of its own.
    private static let inPlaceMinimum = 4 * 1024

    /// Hands one piece of body to the delegate the way it asked; false to pause.
    private func deliver(_ data: UnsafeRawBufferPointer, to d: any UpstreamClientDelegate) -> Bool {
        while true {
            switch mode {
            case .stream:
                return d.upstreamReceivedBody(data)
            case .discard:
                return true
            case .hold(let held):
                if held.append(data) { return true }
                mode = d.upstreamHeldBodyOverflowed()
                if isClosing { return true }
            }
        }
    }

    /// The response is complete: back to the pool when the connection can carry another exchange
    /// (RFC 9112 §9.3), then the delegate hears of it.
    private func finish(reusable noLeftover: Bool) {
        let d = delegate
        let next = pipelined
        // Bytes after the end are the pipelined GET's answer when one was sent, else a confused upstream.
        let keep = hasResponse && responseKeepAlive && requestComplete && (noLeftover || next != nil) && !isClosing
        let m = worker.metrics
        let took = uv_hrtime() &- sentAt
        m.observe(MetricsLayout.upstreamDuration(kind), ns: took)
        m.upstreamReached(nowMs: worker.now)
        d?.upstreamTook(ns: took)
        endExchange()
        if keep, let next {
            // RFC 9112 §9.3.2: the pipelined GET is answered next on this connection.
            stopTimer()
            offered = next
            worker.pool.offer(self)
        } else if keep {
            stopTimer()
            worker.pool.release(self)
        } else {
            close()
        }
        if let d { withExtendedLifetime(d) { d.upstreamFinished() } }
        if offered != nil {
            // Nobody wants that answer (the write failed, or its re-fetch names another resource): it must never
            // reach another exchange, so the connection goes.
            offered = nil
            worker.pool.withdrawOffer(self)
            close()
        }
    }

    private func fail(_ failure: UpstreamFailure) {
        let d = delegate
        let m = worker.metrics
        if let d {
            if !hasResponse { m.add(MetricsLayout.upstreamRequest(kind, status: nil)) }
            let took = uv_hrtime() &- sentAt
            m.observe(MetricsLayout.upstreamDuration(kind), ns: took)
            d.upstreamTook(ns: took)
        }
        switch failure {
        case .unreachable(let code), .unresolved(let code): m.upstreamUnreachable(nowMs: worker.now, code: code)
        case .connectTimedOut, .handshakeTimedOut: m.upstreamUnreachable(nowMs: worker.now, code: UV_ETIMEDOUT.rawValue)
        // A handshake that fails is an upstream this proxy cannot use (a certificate it does not trust…).
        case .tls where state == .connecting: m.upstreamUnreachable(nowMs: worker.now, code: UV_EPROTO.rawValue)
        default: break
        }
        endExchange()
        close()
        if let d { withExtendedLifetime(d) { d.upstreamFailed(failure) } }
    }

    private func endExchange() {
        delegate = nil
        replayable = nil
        pipelined = nil
        hasResponse = false
        interimBytes = 0
        mode = .stream
        exchanges += 1
    }

    /// A pooled connection that turns out closed before any answer: the request is replayed once on a new
    /// connection (RFC 9110 §9.2.2, RFC 9112 §9.3.1).
    private func replayOnFreshConnection() -> Bool {
        guard let d = delegate, let request = replayable, exchanges > 0, !receivedResponseBytes else { return false }
        let next = pipelined
        delegate = nil
        replayable = nil
        pipelined = nil
        close()
        let fresh = UpstreamConnection(worker: worker)
        fresh.begin(
            request, method: method, replayable: false, complete: true, kind: kind, delegate: d, pipelined: next)
        withExtendedLifetime(d) { d.upstreamRetried(on: fresh) }
        return true
    }

    /// The upstream closed (error nil) or reset the connection.
    private func ended(error: Int32?) {
        guard delegate != nil else { return close() }
        if hasResponse {
            // RFC 9112 §6.3 item 8: a close-delimited body ends here; any other body is truncated.
            if error == nil && decoder.finishAtClose() { return finish(reusable: false) }
            return fail(.closed)
        }
        if replayOnFreshConnection() { return }
        fail(.closed)
    }

    override func didReachEOF() { ended(error: nil) }

    override func didFail(_ code: Int32) { ended(error: code) }

    override func didDrain() {
        if let d = delegate { withExtendedLifetime(d) { d.upstreamTookRequestBytes() } }
    }

    override func timerFired() {
        switch timerPurpose {
        case .idle:
            close()
        case .connect:
            if let f = connectFailure { return fail(f) }
            if memoryPeer != nil && state == .connecting { return didConnect(0) }
            fail(tls != nil ? .handshakeTimedOut : .connectTimedOut)
        case .response:
            guard delegate != nil else { return close() }
            fail(.timedOut)
        }
    }

    override func didClose() {
        if inPool { worker.pool.remove(self) }
        worker.pool.connectionClosed()
        delegate = nil
    }

    // MARK: the pool's side

    /// Idle in the pool: read only to notice the upstream closing it, until `timeouts.upstream_idle`.
    func parkIdle() {
        inPool = true
        startReading()
        arm(.idle, settings.timeouts.upstreamIdle)
    }
}

private func onUpstreamConnect(_ req: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    let c = Unmanaged<UpstreamConnection>.fromOpaque(req!.pointee.data).takeUnretainedValue()
    req!.deallocate()
    c.didConnect(status)
}

internal import CLibUV
internal import CEtagShim
import EtagCore
import EtagHTTP

/// One client connection: request framing in (head, then body), bytes out, keep-alive, pipelining (answered
/// in order, one exchange at a time) and the client-side timeouts. What an exchange does lives in its own type:
/// the relay of a forwarded request (`Relay`), the cache lookup of a read (`ReadCache`), single-flight
/// (`Flight`), the guarded write (`GuardedWrite`) and the proxy's own answers (`+Answers`).
///
/// Worker thread only. The connection owns the exchange objects of its exchange in flight; each refers back
/// to it `unowned` and is ended (`endExchange`, `abort`, `didClose`) before the connection goes away.
final class ClientConnection: TCPConnection {
    enum Phase { case head, body, awaitingResponse }
    enum TimerPurpose { case header, keepalive, body, send, none }

    private(set) var phase = Phase.head
    private var scanOffset = 0
    private var timerPurpose = TimerPurpose.none
    private(set) var peerIP: [UInt8] = []
    private var insideConsume = false
    private var closeWhenDrained = false
    private var peerEnded = false
    /// Memory for request heads, reused from exchange to exchange (see `FieldBlock.refill`). It and
    /// `bodyDecoder` are passed `inout` only to the pure parsers, which cannot reach the connection: no dynamic
    /// exclusivity check.
    @exclusivity(unchecked) private var requestStorage = FieldBlock.empty
    /// The exchange's `X-Request-Id` field line (`RequestID`): the client's id, or one the worker made (memory
    /// reused). Worker thread only, written whole at the start of an exchange: no dynamic exclusivity check.
    @exclusivity(unchecked) private(set) var requestIdLine: [UInt8] = []

    // The exchange in flight. `record` and `read` are read and assigned by the exchange objects many times per
    // exchange, always as a whole statement on the worker thread (`read` is passed `inout` only to
    // `ReadCache.lookup`, which cannot reach the connection), so their dynamic exclusivity checks are left out:
    // each cost ~80-200 instructions.
    @exclusivity(unchecked) var record = ExchangeRecord()
    @exclusivity(unchecked) private var bodyDecoder = BodyDecoder(request: .none, maxTrailerSize: 0)
    /// The request body has been read whole.
    private(set) var bodyDone = true
    /// The forwarded request and its answer, while the upstream is asked.
    var relay: Relay?
    /// Cache state of a GET/HEAD exchange; nil for other methods.
    @exclusivity(unchecked) var read: ReadState?
    /// A checked, serialized write (PUT/PATCH/DELETE) or a write awaiting its re-fetch.
    var guarded: GuardedWrite?
    /// This exchange's part in single-flight.
    var flight = FlightRole.none

    /// The settings of the exchange in flight: the worker's when it began, so a reload (SIGHUP) applies to new
    /// exchanges only.
    @exclusivity(unchecked) private(set) var settings: ExchangeSettings
    var request: RequestHead? { record.request }

    init(worker: Worker) {
        settings = worker.settings
        super.init(worker: worker, defersWrites: true)
        queuedMemory = worker.exchanges.heldMemory
    }

    func start() {
        if memoryPeer != nil {
            peerIP = Array("127.0.0.1".utf8)  // the socket-free driver's client
        } else {
            var buf = [CChar](repeating: 0, count: 64)
            let n = etag_tcp_peer_ip(tcp, &buf, 64)
            peerIP = buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }
            uv_tcp_nodelay(tcp, 1)
        }
        arm(.header, settings.timeouts.clientHeader)
        startReading()
    }

    func arm(_ purpose: TimerPurpose, _ ms: Int) {
        timerPurpose = purpose
        if purpose == .none { stopTimer() } else { startTimer(ms) }
    }

    // MARK: input

    override func consume(_ buf: UnsafeRawBufferPointer) -> Int {
        insideConsume = true
        defer { insideConsume = false }
        var off = 0
        while !isClosing {
            switch phase {
            case .head:
                if off >= buf.count { return off }
                if timerPurpose == .keepalive || timerPurpose == .send { arm(.header, settings.timeouts.clientHeader) }
                let rest = UnsafeRawBufferPointer(rebasing: buf[off...])
                do {
                    switch try RequestParser.parse(
                        rest, limits: settings.requestLimits, scanFrom: scanOffset, storage: &requestStorage
                    ) {
                    case .incomplete(let scanned):
                        scanOffset = scanned
                        return off
                    case .complete(let head, let used):
                        scanOffset = 0
                        off += used
                        beginExchange(head)
                    }
                } catch {
                    rejectRequest(error)
                    return buf.count
                }
            case .body:
                if let relay, relay.requestBacklog > settings.bufferSize {
                    // The upstream takes the body slower than the client sends it.
                    relay.clientPaused = true
                    stopReading()
                    return off
                }
                if off >= buf.count, !bodyDecoder.isDone { return off }
                do {
                    let (event, next) = try bodyDecoder.next(buf, at: off)
                    off = next
                    switch event {
                    case .data(let r):
                        if bodyDecoder.bodyBytes > settings.maxBodySize {
                            reject(413, "request body larger than the limit")
                            return buf.count
                        }
                        let data = UnsafeRawBufferPointer(rebasing: buf[r])
                        if let g = guarded { g.body.append(contentsOf: data) } else { relay?.forwardBody(data) }
                        arm(.body, settings.timeouts.clientBody)
                    case .needMore:
                        return off
                    case .end:
                        requestBodyComplete()
                    }
                } catch {
                    reject(error.status, error.detail)
                    return buf.count
                }
            case .awaitingResponse:
                // Pipelined bytes wait here; stop reading when they pile up.
                if buf.count - off > settings.requestLimits.maxHeadSize { stopReading() }
                return off
            }
        }
        return buf.count
    }

    /// The client asked to read more of its request body: the upstream took the backlog.
    func resumeRequestBody() {
        startReading()
        processBuffered()
    }

    override func didReachEOF() {
        peerEnded = true
        switch phase {
        case .head:
            // Nothing in flight (a partial head is abandoned).
            if relay == nil { close() }
        case .body:
            abort()
        case .awaitingResponse:
            if guarded?.notYetSent == true {
                // A client that goes away before its write is sent cancels it.
                abort()
            } else {
                // The client half-closed after its request: answer, then close.
                record.keepAliveAfter = false
            }
        }
    }

    override func didFail(_ code: Int32) {
        abort()
    }

    override func didDrain() {
        relay?.clientDrained()
        if timerPurpose == .send {
            let idle = phase == .head && relay == nil && guarded == nil && !closeWhenDrained
            if idle { arm(.keepalive, settings.timeouts.keepalive) } else { arm(.none, 0) }
        }
        if closeWhenDrained { shutdownThenClose() }
    }

    override func timerFired() {
        switch timerPurpose {
        case .keepalive, .none:
            close()
        case .header:
            // RFC 9110 §15.5.9: 408 when the request did not arrive in time; silent close if nothing came.
            if !input.isEmpty {
                reject(408, "the request head was not received within the client header timeout")
            } else {
                close()
            }
        case .body:
            reject(408, "the request body was not received within the client body timeout")
        case .send:
            abort()
        }
    }

    override func tlsHandshakeCompleted() {
        worker.metrics.add(tls?.resumed == true ? .listenerTLSResumed : .listenerTLSFull)
    }

    /// A failed handshake (plaintext on the TLS port, no common version or cipher…) is counted and closed; a
    /// failure later (a bad record) ends the exchange like a reset.
    override func tlsFailed(_ detail: String) {
        if tls?.handshakeDone == false {
            worker.metrics.add(.listenerTLSFailed)
            return close()
        }
        abort()
    }

    override func didClose() {
        endExchangeObjects(abandoned: true)
        worker.clientClosed(self)
    }

    /// Exchanges answered on this connection.
    private var exchangesDone = 0

    /// Called when the worker starts a graceful shutdown: an idle keep-alive connection closes now; one that has
    /// not sent its first request yet (just accepted, its request perhaps on the way) is answered once, then closed.
    func drain() {
        record.keepAliveAfter = false
        if exchangesDone > 0 && phase == .head && input.isEmpty && relay == nil && queuedBytes == deferredBytes {
            close()  // sends what is still held first
        }
    }

    // MARK: exchange

    private func beginExchange(_ head: RequestHead) {
        if settings !== worker.settings { settings = worker.settings }
        if let r = RequestID.clientValue(head) {
            RequestID.line(head.head.bytes[r], into: &requestIdLine)
        } else {
            worker.exchanges.requestIds.next(into: &requestIdLine)
        }
        record = ExchangeRecord(
            request: head, method: head.method, clientIsHTTP11: head.isHTTP11,
            keepAliveAfter: head.keepAlive && !worker.draining, start: uv_hrtime())
        if case .length(let n) = head.framing, n > settings.maxBodySize {
            // RFC 9110 §15.5.14: 413; the body is not read, so the connection closes.
            reject(413, "request body of \(n) bytes is larger than the limit of \(settings.maxBodySize)")
            return
        }
        bodyDecoder = BodyDecoder(request: head.framing, maxTrailerSize: settings.requestLimits.maxTrailerSize)
        bodyDone = bodyDecoder.isDone
        if head.expectContinue && !bodyDone {
            // RFC 9110 §10.1.1: the proxy answers the expectation itself and does not forward Expect.
            write(Self.continueBytes)
        }
        phase = bodyDone ? .awaitingResponse : .body
        arm(bodyDone ? .none : .body, settings.timeouts.clientBody)
        if GuardedWrite.begin(head, on: self) { return }
        let isRead = head.method == .get || head.method == .head
        if isRead {
            switch ReadCache.lookup(head, bodyDone: bodyDone, context: worker.exchanges, state: &read) {
            case .notModified(let quoted, let fields):
                worker.metrics.add(MetricsLayout.cacheLookup(.hit))
                return notModifiedFromCache(quoted, fields: fields)
            case .preconditionFailed(let quoted):
                worker.metrics.add(MetricsLayout.cacheLookup(.hit))
                return answer412(current: quoted)
            case .forward:
                worker.metrics.add(MetricsLayout.cacheLookup(.init(read!.forward)))
            }
        }
        let tagConditions = read.map { $0.conditions.ifMatch != nil || $0.conditions.ifNoneMatch != nil } ?? false
        let upstreamHead = settings.rules.upstreamRequestHead(
            head, clientIP: peerIP, asGet: head.method == .head,
            // The upstream never issued the proxy's tags: it never sees them in a condition (unless they are its own).
            dropTagConditions: isRead || settings.etagMode == .replace, dropDateConditions: tagConditions,
            requestIdLine: requestIdLine)
        if read != nil && joinFlight(upstreamHead: upstreamHead) { return }
        // Only a request without a body can be replayed on a fresh connection (RFC 9112 §9.3.1).
        forward(
            upstreamHead, method: isRead ? .get : head.method,
            replayable: head.framing == .none && head.method.isIdempotent)
    }

    static let continueBytes: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Sends the request upstream (with `pipelined` right behind it); the answer comes back through a `Relay`.
    func forward(_ head: [UInt8], method: HTTPMethod, replayable: Bool, pipelined: [UInt8]? = nil) {
        let r = Relay(connection: self)
        relay = r
        r.start(head, method: method, replayable: replayable, complete: bodyDone, pipelined: pipelined)
    }

    /// Builds a head in the worker's scratch memory and writes it with `body` in one go (the bytes are copied
    /// only when the socket cannot take them at once), so the head costs no allocation.
    func writeHead(body: HeldBytes? = nil, _ build: (inout ByteWriter) -> Void) {
        var w = ByteWriter(reusing: &worker.exchanges.headScratch)
        build(&w)
        w.withUnsafeBytes { h in
            if let body { body.withUnsafeBytes { write(h, $0) } } else { write(h) }
        }
        worker.exchanges.headScratch = w.scratch
    }

    private func requestBodyComplete() {
        bodyDone = true
        phase = .awaitingResponse
        if timerPurpose == .body { arm(.none, 0) }
        if let g = guarded { return g.bodyComplete() }
        relay?.endBody()
    }

    /// Ends the exchange: logs it, then either waits for the next request or closes.
    func endExchange() {
        exchangesDone += 1
        account()
        endExchangeObjects(abandoned: false)
        if !record.keepAliveAfter || peerEnded || worker.draining {
            record.request = nil
            closeAfterWrites()
            return
        }
        record.request = nil
        phase = .head
        // An answer the client has not taken yet is under the send timeout, not the (longer) keep-alive one: a
        // client that stops reading is cut, and its queued bytes go back to `limits.held_memory`.
        if queuedBytes > deferredBytes {
            arm(.send, settings.timeouts.send)
        } else {
            arm(.keepalive, settings.timeouts.keepalive)
        }
        if !isReading { startReading() }
        if !insideConsume { processBuffered() }
    }

    /// Ends every exchange object: the flight (its waiters ask for themselves), the guarded write (lease freed,
    /// or left to expire when `abandoned` after the write went out), the relay (its upstream connection).
    func endExchangeObjects(abandoned: Bool) {
        leaveFlight()
        if let g = guarded {
            guarded = nil
            g.end(abandoned: abandoned)
        }
        if let r = relay {
            relay = nil
            r.end()
        }
        read = nil
    }

    /// A new id for an exchange without a parsed request (it is refused).
    func newRequestId() { worker.exchanges.requestIds.next(into: &requestIdLine) }

    /// The exchange ends (answered, or `aborted`): its access-log line and its metrics.
    func account(aborted: Bool = false) {
        let ns = uv_hrtime() &- record.start
        record.durationNs = ns
        if worker.exchanges.logging { worker.exchanges.accessLog.record(self, aborted: aborted) }
        let m = worker.metrics
        m.add(MetricsLayout.request(method: record.method, status: record.statusSent))
        m.observe(MetricsLayout.requestDuration, ns: ns)
    }

    func closeAfterWrites() {
        phase = .awaitingResponse  // read nothing more as a request
        if queuedBytes == deferredBytes {  // the FIN follows whatever is still held
            shutdownThenClose()
        } else {
            closeWhenDrained = true
            arm(.send, settings.timeouts.send)
        }
    }
}

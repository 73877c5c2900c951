internal import CLibUV
internal import CEtagShim
import EtagCore
import EtagHTTP

/// One client connection and the exchange in flight on it: request head and body in, forwarded to an
/// upstream connection, response relayed back; pipelined requests are answered in order, one at a time.
/// Worker thread only. The upstream connection is referenced only while an exchange uses it.
final class ClientConnection: TCPConnection {
    enum Phase { case head, body, awaitingResponse }
    enum TimerPurpose { case header, keepalive, body, send, none }

    var phase = Phase.head
    private var scanOffset = 0
    private var timerPurpose = TimerPurpose.none
    private var bytesSeenForHead = false
    var peerIP: [UInt8] = []
    var insideConsume = false
    var closeWhenDrained = false
    var peerEnded = false

    /// Memory for the request and response heads, reused from exchange to exchange (see `FieldBlock.refill`).
    private var requestStorage = FieldBlock.empty

    // The exchange in flight.
    var request: RequestHead?
    /// The request's version, kept apart so the hot paths need not copy `request` to read it.
    var clientIsHTTP11 = true
    var bodyDecoder = BodyDecoder(request: .none, maxTrailerSize: 0)
    var bodyDone = true
    var upstream: UpstreamConnection?
    var response: ResponseHead?
    var clientFraming = ForwardingRules.ClientFraming.none
    /// The response head, held back to go out in one write with the first body bytes.
    var pendingHead: [UInt8]? = nil
    var responseStarted = false
    var keepAliveAfter = true
    var exchangeStart: UInt64 = 0
    var statusSent = 0
    var bodyBytesSent: UInt64 = 0
    var upstreamStatus = 0
    var clientPausedForUpstream = false
    var upstreamPausedForClient = false
    /// Cache state of a GET/HEAD exchange; nil for other methods.
    var read: ReadState?
    /// The response body held for its ETag, when it is.
    var held: HeldBody?
    /// The upstream's own tag, kept for a held body (`etag.upstream: keep`).
    var keptTag: [UInt8]?
    /// Single-flight: the flight this exchange waits on, and the upstream head it sends if the leader fails.
    var waitingOn: Flight?
    var waitingHead: [UInt8]?
    var isFlightLeader = false
    /// A checked, serialized write (PUT/PATCH/DELETE) or a POST awaiting its re-fetch.
    var guarded: GuardedWrite?
    /// Decided when a write's answer starts: whether it waits for a re-fetch.
    var pendingRefetch = Refetch.none

    var settings: ExchangeSettings { worker.settings }

    init(worker: Worker) {
        super.init(worker: worker, defersWrites: true)
    }

    func start() {
        var buf = [CChar](repeating: 0, count: 64)
        let n = etag_tcp_peer_ip(tcp, &buf, 64)
        peerIP = buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }
        uv_tcp_nodelay(tcp, 1)
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
                if timerPurpose == .keepalive { arm(.header, settings.timeouts.clientHeader) }
                bytesSeenForHead = true
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
                if let up = upstream, up.backlog > settings.bufferSize {
                    clientPausedForUpstream = true
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
                            fail(413, "request body larger than the limit")
                            return buf.count
                        }
                        if let g = guarded {
                            g.body.append(contentsOf: buf[r])
                        } else {
                            forwardBody(UnsafeRawBufferPointer(rebasing: buf[r]))
                        }
                        arm(.body, settings.timeouts.clientBody)
                    case .needMore:
                        return off
                    case .end:
                        requestBodyComplete()
                    }
                } catch {
                    fail(error.status, error.detail)
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

    override func didReachEOF() {
        peerEnded = true
        switch phase {
        case .head:
            // Nothing in flight (a partial head is abandoned).
            if upstream == nil && response == nil { close() }
        case .body:
            abort()
        case .awaitingResponse:
            if let g = guarded, g.stage == .lease || g.stage == .prefetch {
                // A client that goes away before its write is sent cancels it.
                abort()
            } else {
                // The client half-closed after its request: answer, then close.
                keepAliveAfter = false
            }
        }
    }

    override func didFail(_ code: Int32) {
        abort()
    }

    override func didDrain() {
        if upstreamPausedForClient, let up = upstream {
            upstreamPausedForClient = false
            up.resume()
        }
        if timerPurpose == .send { arm(.none, 0) }
        if closeWhenDrained { shutdownThenClose() }
    }

    override func timerFired() {
        switch timerPurpose {
        case .keepalive, .none:
            close()
        case .header:
            // RFC 9110 §15.5.9: 408 when the request did not arrive in time; silent close if nothing came.
            if bytesSeenForHead || !input.isEmpty {
                fail(408, "the request head was not received within the client header timeout")
            } else {
                close()
            }
        case .body:
            fail(408, "the request body was not received within the client body timeout")
        case .send:
            abort()
        }
    }

    override func didClose() {
        leaveFlight()
        releaseGuard(abandoned: true)
        releaseHeld()
        detachUpstream()
        worker.clientClosed(self)
    }

    /// Called when the worker starts a graceful shutdown.
    func drain() {
        keepAliveAfter = false
        if phase == .head && input.isEmpty && upstream == nil && response == nil && queuedBytes == deferredBytes {
            close()  // sends what is still held first
        }
    }

    // MARK: exchange

    private func beginExchange(_ head: RequestHead) {
        request = head
        clientIsHTTP11 = head.isHTTP11
        exchangeStart = worker.now
        keepAliveAfter = head.keepAlive && !worker.draining
        statusSent = 0
        bodyBytesSent = 0
        upstreamStatus = 0
        response = nil
        responseStarted = false
        bytesSeenForHead = false
        if case .length(let n) = head.framing, n > settings.maxBodySize {
            // RFC 9110 §15.5.14: 413; the body is not read, so the connection closes.
            fail(413, "request body of \(n) bytes is larger than the limit of \(settings.maxBodySize)")
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
        read = nil
        guarded = nil
        if beginGuardedWrite(head) { return }
        let isRead = head.method == .get || head.method == .head
        if isRead && answerFromCache(head) { return }
        let tagConditions = read.map { $0.conditions.ifMatch != nil || $0.conditions.ifNoneMatch != nil } ?? false
        let upstreamHead = settings.rules.upstreamRequestHead(
            head, clientIP: peerIP, asGet: head.method == .head,
            // The upstream never issued the proxy's tags: it never sees them in a condition (unless they are its own).
            dropTagConditions: isRead || settings.etagMode == .replace, dropDateConditions: tagConditions)
        if read != nil && joinFlight(upstreamHead: upstreamHead) { return }
        // Only a request without a body can be replayed on a fresh connection (RFC 9112 §9.3.1).
        sendToUpstream(upstreamHead, method: isRead ? .get : head.method,
                       replayable: head.framing == .none && head.method.isIdempotent)
    }

    static let continueBytes: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Builds a head in the worker's scratch memory and writes it with `body` in one go (the bytes are copied
    /// only when the socket cannot take them at once), so the head costs no allocation.
    func writeHead(body: [UInt8] = [], _ build: (inout ByteWriter) -> Void) {
        var w = ByteWriter(reusing: &worker.headScratch)
        build(&w)
        w.bytes.withUnsafeBytes { h in body.withUnsafeBytes { write(h, $0) } }
        worker.headScratch = w.bytes
    }

    private func forwardBody(_ data: UnsafeRawBufferPointer) {
        upstream?.sendBody(data, chunked: request?.framing == .chunked)
    }

    private func requestBodyComplete() {
        bodyDone = true
        if guarded != nil {
            if timerPurpose == .body { arm(.none, 0) }
            return startGuardedWrite()
        }
        upstream?.endBody(chunked: request?.framing == .chunked)
        phase = .awaitingResponse
        if timerPurpose == .body { arm(.none, 0) }
    }

    /// Ends the exchange: logs it, then either waits for the next request or closes.
    func endExchange() {
        worker.accessLog.record(self)
        leaveFlight()
        releaseGuard()
        releaseHeld()
        read = nil
        request = nil
        response = nil
        pendingHead = nil
        upstreamPausedForClient = false
        if !keepAliveAfter || peerEnded || worker.draining {
            closeAfterWrites()
            return
        }
        phase = .head
        arm(.keepalive, settings.timeouts.keepalive)
        if !isReading && !clientPausedForUpstream { startReading() }
        clientPausedForUpstream = false
        if !insideConsume { processBuffered() }
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

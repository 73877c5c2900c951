import EtagCore
import EtagHTTP

/// A forwarded request and its answer: sends the request (and its body, as the client sends it) upstream and
/// relays the response as it arrives, or holds it whole to tag it (`ResponsePlan`), then answers.
///
/// Owned by its client connection (`ClientConnection.relay`), which it refers to `unowned`; `end()` detaches
/// its upstream connection, whose delegate it is. One per exchange; worker thread only.
final class Relay {
    unowned(unsafe) let connection: ClientConnection  // it owns this relay and ends it before it goes away
    private var upstream: UpstreamConnection?
    private(set) var response: ResponseHead?
    private var clientFraming = ForwardingRules.ClientFraming.none
    /// The response head, held back to go out in one write with the first body bytes.
    private var pendingHead: [UInt8]?
    private var held: HeldBody?
    /// The upstream's own tag for a held body (`etag.upstream: keep`).
    private var keptTag: [UInt8]?
    /// Whether a streamed response has started (its head is out or about to go).
    private var streaming = false
    private var upstreamPaused = false
    /// The client stopped reading its request body until the upstream takes the backlog.
    var clientPaused = false
    /// Decided when a write's answer starts: whether it waits for a re-fetch.
    private var refetch = Refetch.none

    init(connection: ClientConnection) {
        self.connection = connection
    }

    private var worker: Worker { connection.worker }
    private var settings: ExchangeSettings { connection.settings }

    /// - Parameter pipelined: a GET to send right behind the request (see `UpstreamConnection.begin`).
    func start(_ head: [UInt8], method: HTTPMethod, replayable: Bool, complete: Bool, pipelined: [UInt8]? = nil) {
        let up = worker.pool.acquire()
        upstream = up
        up.begin(
            head, method: method, replayable: replayable, complete: complete, kind: .forward, delegate: self,
            pipelined: pipelined)
    }

    func forwardBody(_ data: UnsafeRawBufferPointer) {
        upstream?.sendBody(data, chunked: connection.request?.framing == .chunked)
    }

    func endBody() {
        upstream?.endBody(chunked: connection.request?.framing == .chunked)
    }

    /// Request bytes the upstream socket has not taken yet.
    var requestBacklog: Int { upstream?.backlog ?? 0 }

    /// Nothing of the answer has reached the client yet: an error can still be answered instead.
    var nothingSent: Bool { held != nil || pendingHead != nil || !streaming }

    /// The client took what was queued for it: a paused upstream reads on.
    func clientDrained() {
        if upstreamPaused, let up = upstream {
            upstreamPaused = false
            up.resume()
        }
    }

    /// Ends the relay: drops the upstream connection (unless the exchange finished with it) and the held body.
    func end() {
        if let up = upstream {
            upstream = nil
            up.detach()
        }
        if let h = held {
            held = nil
            if let hasher = h.takeHasher() { worker.exchanges.returnHasher(hasher, used: true) }
        }
    }

    private func cacheStatus(_ status: Int, stored: Bool) -> [UInt8] {
        guard let forward = connection.read?.forward else { return [] }
        return CacheStatus.forwarded(forward, status: status, stored: stored)
    }
}

extension Relay: UpstreamClientDelegate {
    func upstreamTook(ns: UInt64) { connection.record.upstreamNs &+= ns }

    func upstreamReceivedHead(_ head: ResponseHead) -> UpstreamBodyMode {
        let c = connection
        response = head
        c.record.upstreamStatus = head.status
        c.record.statusSent = head.status
        if !c.bodyDone || worker.draining { c.record.keepAliveAfter = false }
        guard let req = c.request else { return .discard }
        // RFC 9111 §4.4: a non-error answer to an unsafe method invalidates what the write may have changed.
        if !req.method.isSafe && head.status >= 200 && head.status < 400 {
            ReadCache.invalidate(after: head, to: req, context: worker.exchanges)
        }
        let upstreamTag = ForwardingRules.upstreamETag(head)
        let asker: ResponsePlan.Asker
        if let noConditions = c.read?.conditions.isEmpty {
            asker = .read(conditions: !noConditions)
        } else if req.method.isSafe {
            asker = .safeOther
        } else {
            let host = req.hostRange.map { Array(req.head.bytes[$0]) } ?? []
            refetch = Refetch.after(
                method: req.method, status: head.status,
                location: head.head.firstValue("location").map {
                    Array(head.head.bytes[$0])
                }, host: host, mode: settings.etagAfterWrite)
            asker = .write(refetchWaits: refetch.waits)
        }
        let plan = ResponsePlan.decide(
            status: head.status, framing: head.framing, asker: asker, etagMode: settings.etagMode,
            upstreamTag: upstreamTag != nil, afterWrite: settings.etagAfterWrite, maxBody: settings.maxHashedBody)
        switch plan {
        case .stream:
            streamHead(head)
            return upstream == nil ? .discard : .stream
        case .hold(let digest):
            var expected: Int? = nil
            if case .length(let n) = head.framing { expected = Int(truncatingIfNeeded: n) }
            let body = HeldBody(
                limit: settings.maxHashedBody, expected: expected,
                hasher: digest ? worker.exchanges.takeHasher() : nil, memory: worker.exchanges.heldMemory,
                unrefused: settings.bufferSize)
            held = body
            keptTag = digest ? nil : upstreamTag
            return .hold(body)
        }
    }

    func upstreamReceivedBody(_ data: UnsafeRawBufferPointer) -> Bool {
        sendBody(data)
        guard connection.queuedBytes > settings.bufferSize else { return true }
        // The client reads slower than the upstream sends: pause the upstream until the client drains.
        upstreamPaused = true
        connection.arm(.send, settings.timeouts.send)
        return false
    }

    func upstreamAwaitsBody() {
        flushHead()
    }

    /// The body grew past `etag.max_body` while held: send it on without an ETag.
    func upstreamHeldBodyOverflowed() -> UpstreamBodyMode {
        guard let h = held, let head = response else { return .discard }
        held = nil
        keptTag = nil
        if let hasher = h.takeHasher() { worker.exchanges.returnHasher(hasher, used: true) }
        streamHead(head)
        guard upstream != nil else { return .discard }
        h.bytes.withUnsafeBytes { sendBody($0) }
        return .stream
    }

    func upstreamFinished() {
        upstream = nil
        if held != nil { finishHeld() } else { finishStreamed() }
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        upstream = nil
        let c = connection
        switch failure {
        case .unreachable(let code):
            c.fail(502, "the upstream is unreachable: \(UVError.name(code))", keepAlive: true)
        case .unresolved(let code):
            c.fail(
                502, "cannot resolve the upstream host \(worker.resolver.host): \(UVError.name(code))", keepAlive: true)
        case .connectTimedOut:
            c.fail(504, "connecting to the upstream timed out", keepAlive: true)
        case .handshakeTimedOut:
            c.fail(504, "the TLS handshake with the upstream timed out", keepAlive: true)
        case .timedOut:
            c.fail(504, "the upstream did not answer within the upstream timeout", keepAlive: true)
        case .closed:
            let detail =
                response == nil
                ? "the upstream closed the connection without a response"
                : "the upstream closed the connection in the middle of the body"
            c.fail(502, detail, keepAlive: true)
        case .broken(let detail):
            c.fail(502, "invalid response from the upstream: \(detail)", keepAlive: true)
        case .tls(let detail):
            c.fail(502, "TLS with the upstream failed: \(detail)", keepAlive: true)
        }
    }

    func upstreamRetried(on fresh: UpstreamConnection) {
        upstream = fresh
    }

    func upstreamTookRequestBytes() {
        guard clientPaused else { return }
        clientPaused = false
        connection.resumeRequestBody()
    }
}

extension Relay {
    // MARK: streamed answers

    /// Prepares the head of a response whose body is relayed as it arrives (no ETag of ours).
    private func streamHead(_ head: ResponseHead) {
        let c = connection
        let http11 = c.record.clientIsHTTP11
        streaming = true
        clientFraming = ForwardingRules.clientFraming(for: head, clientIsHTTP11: http11)
        if clientFraming == .untilClose { c.record.keepAliveAfter = false }
        connection.record.cacheStatusLine = cacheStatus(head.status, stored: false)
        pendingHead = settings.rules.clientResponseHead(
            head, framing: clientFraming, keepAlive: c.record.keepAliveAfter, clientIsHTTP11: http11,
            date: worker.exchanges.date, dropETag: settings.etagMode == .replace,
            extra: connection.record.cacheStatusLine ?? [], requestIdLine: connection.requestIdLine)
        if c.request?.method == .head, let up = upstream, head.framing != .none {
            // A HEAD fetched as GET whose body is not needed: answer now, drop the upstream connection.
            clientFraming = .none
            upstream = nil
            up.detach()
            flushHead()
            c.endExchange()
        }
    }

    private func sendBody(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let c = connection
        c.record.bodyBytesSent += UInt64(data.count)
        let head = pendingHead ?? []
        pendingHead = nil
        head.withUnsafeBytes { hb in
            if clientFraming == .chunked {
                let ch = ChunkedEncoder.header(data.count)
                ch.withUnsafeBytes { cb in
                    ChunkedEncoder.crlf.withUnsafeBytes { c.write(hb, cb, data, $0) }
                }
            } else {
                c.write(hb, data)
            }
        }
    }

    private func flushHead() {
        if let h = pendingHead {
            pendingHead = nil
            connection.write(h)
        }
    }

    private func finishStreamed() {
        let head = pendingHead ?? []
        pendingHead = nil
        if clientFraming == .chunked {
            head.withUnsafeBytes { hb in ChunkedEncoder.last.withUnsafeBytes { connection.write(hb, $0) } }
        } else if !head.isEmpty {
            connection.write(head)
        }
        connection.endExchange()
    }

    // MARK: held answers

    /// The whole body is here: tag it, store the tag, answer 304 or 200 (RFC 9110 §13.2.2, §15.4.5) — or, for
    /// a write under `etag_after_write: refetch`, hand the answer to the re-fetch that gives its tag.
    private func finishHeld() {
        guard let h = held, let head = response else { return }
        held = nil
        let c = connection
        if refetch.waits {
            GuardedWrite.refetch(after: head, body: h.bytes, path: refetch.path, on: c)
            return
        }
        var stored = false
        var directives: ResponseCacheDirectives? = nil  // parsed once, for the store and for single-flight
        let tag: [UInt8]
        if let theirs = keptTag {
            tag = theirs
        } else {
            let digest: Digest20
            if let (d, hasher) = h.finish() {
                worker.exchanges.returnHasher(hasher, used: false)
                digest = d
            } else {
                digest = h.bytes.withUnsafeBytes { worker.exchanges.keyHasher.hash($0) }
            }
            tag = digest.quotedETag
            worker.exchanges.metrics.add(.hashedResponses)
            if let key = c.read?.key, let generation = c.read?.generation, let req = c.request {
                let d = ResponseCacheDirectives(head.head)
                directives = d
                stored = ReadCache.store(
                    digest, key: key, generation: generation, response: head, directives: d,
                    request: req, context: worker.exchanges)
            }
        }
        let result = TaggedResponse(
            head: head, body: h.bytes, tag: tag, ours: keptTag == nil, stored: stored, directives: directives)
        c.settleFlight(result)
        c.respondTagged(result, collapsed: false)
    }
}

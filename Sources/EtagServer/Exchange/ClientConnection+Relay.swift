import EtagCore
import EtagHTTP

/// Relaying the upstream's response to the client (RFC 9112 §6, §7; RFC 9110 §7.6): the client connection is
/// the delegate of the upstream connection that forwards its request (and a guarded write's write).
extension ClientConnection: UpstreamClientDelegate {
    /// Starts the exchange's upstream request on a pooled or new connection.
    func startUpstream(_ head: [UInt8], method: HTTPMethod, replayable: Bool, complete: Bool,
                       delegate: any UpstreamClientDelegate) {
        let up = worker.pool.acquire()
        upstream = up
        up.begin(head, method: method, replayable: replayable, complete: complete, delegate: delegate)
    }

    /// Forwards a request whose answer this connection relays.
    func sendToUpstream(_ head: [UInt8], method: HTTPMethod, replayable: Bool) {
        startUpstream(head, method: method, replayable: replayable, complete: bodyDone, delegate: self)
    }

    /// Drops the upstream connection of the exchange, whatever it was doing.
    func detachUpstream() {
        if let up = upstream {
            upstream = nil
            up.detach()
        }
    }

    // MARK: UpstreamClientDelegate

    func upstreamReceivedHead(_ head: ResponseHead) -> UpstreamBodyMode {
        response = head
        upstreamStatus = head.status
        statusSent = head.status
        responseStarted = true
        if !bodyDone || worker.draining { keepAliveAfter = false }
        guard let req = request else { return .discard }
        if !req.method.isSafe && head.status >= 200 && head.status < 400 { invalidateAfterWrite(head) }

        // ETags go on 200s to GET/HEAD and on 200/201 with a body to writes (never on errors, 204 or 1xx).
        let upstreamTag = ForwardingRules.upstreamETag(head)
        let keepTheirs = settings.etagMode == .keep && upstreamTag != nil
        let hasBody = head.framing != .none && head.framing != .length(0)
        pendingRefetch = read == nil ? refetch(after: head) : .none
        let tagged: Bool
        if read != nil {
            tagged = head.status == 200
        } else if !pendingRefetch.waits {
            // A write's own answer is hashed with etag_after_write: body, and also when there is nothing to
            // re-fetch (a POST's 201 without a Location).
            tagged = settings.etagAfterWrite != .none && (head.status == 200 || head.status == 201) && hasBody
        } else {
            tagged = true  // held until the re-fetch gives its tag
        }
        var holdIt = tagged && (!keepTheirs || !(read?.conditions.isEmpty ?? true) || read == nil)
        var expected: Int? = nil
        if case .length(let n) = head.framing {
            if n > UInt64(settings.maxHashedBody) { holdIt = false }  // too large to hold: streamed, untagged
            expected = Int(truncatingIfNeeded: n)
        }
        guard holdIt else {
            streamHead(head)
            return upstream == nil ? .discard : .stream
        }
        // The re-fetch gives a waiting write's answer its tag, and the upstream's own tag needs no digest.
        let needsDigest = !keepTheirs && !pendingRefetch.waits
        let body = HeldBody(limit: settings.maxHashedBody, expected: expected,
                            hasher: needsDigest ? worker.takeHasher() : nil)
        held = body
        keptTag = keepTheirs ? upstreamTag : nil
        return .hold(body)
    }

    func upstreamReceivedBody(_ data: UnsafeRawBufferPointer) -> Bool {
        sendBody(data)
        guard queuedBytes > settings.bufferSize else { return true }
        // The client reads slower than the upstream sends: pause the upstream until the client drains.
        upstreamPausedForClient = true
        arm(.send, settings.timeouts.send)
        return false
    }

    func upstreamAwaitsBody() {
        flushHead()
    }

    /// The body grew past `etag.max_body` while held: send it on without an ETag.
    func upstreamHeldBodyOverflowed() -> UpstreamBodyMode {
        guard let h = held, let head = response else { return .discard }
        let bytes = h.bytes
        releaseHeld()
        streamHead(head)
        guard upstream != nil else { return .discard }
        bytes.withUnsafeBytes { sendBody($0) }
        return .stream
    }

    func upstreamFinished() {
        upstream = nil
        if held != nil { finishHeld() } else { finishStreamed() }
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        upstream = nil
        switch failure {
        case .unreachable(let code):
            fail(502, "the upstream is unreachable: \(UVError.name(code))", keepAlive: true)
        case .connectTimedOut:
            fail(504, "connecting to the upstream timed out", keepAlive: true)
        case .timedOut:
            fail(504, "the upstream did not answer within the upstream timeout", keepAlive: true)
        case .closed:
            let detail = response == nil
                ? "the upstream closed the connection without a response"
                : "the upstream closed the connection in the middle of the body"
            fail(502, detail, keepAlive: true)
        case .broken(let detail):
            fail(502, "invalid response from the upstream: \(detail)", keepAlive: true)
        }
    }

    func upstreamRetried(on fresh: UpstreamConnection) {
        upstream = fresh
    }

    func upstreamTookRequestBytes() {
        guard clientPausedForUpstream else { return }
        clientPausedForUpstream = false
        startReading()
        processBuffered()
    }

    // MARK: streamed answers

    /// Prepares the head of a response whose body is relayed as it arrives (no ETag of ours).
    private func streamHead(_ head: ResponseHead) {
        let isHeadRequest = request?.method == .head
        let http11 = clientIsHTTP11
        clientFraming = ForwardingRules.clientFraming(for: head, clientIsHTTP11: http11)
        if clientFraming == .untilClose { keepAliveAfter = false }
        pendingHead = settings.rules.clientResponseHead(
            head, framing: clientFraming, keepAlive: keepAliveAfter, clientIsHTTP11: http11, date: worker.date,
            dropETag: settings.etagMode == .replace,
            extra: cacheStatusLine(status: head.status, stored: false))
        if isHeadRequest, upstream != nil, head.framing != .none {
            // A HEAD fetched as GET whose body is not needed: answer now, drop the upstream connection.
            clientFraming = .none
            detachUpstream()
            flushHead()
            endExchange()
        }
    }

    private func sendBody(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        bodyBytesSent += UInt64(data.count)
        let head = pendingHead ?? []
        pendingHead = nil
        head.withUnsafeBytes { hb in
            if clientFraming == .chunked {
                let ch = ChunkedEncoder.header(data.count)
                ch.withUnsafeBytes { cb in
                    ChunkedEncoder.crlf.withUnsafeBytes { write(hb, cb, data, $0) }
                }
            } else {
                write(hb, data)
            }
        }
    }

    private func flushHead() {
        if let h = pendingHead {
            pendingHead = nil
            write(h)
        }
    }

    private func finishStreamed() {
        let head = pendingHead ?? []
        pendingHead = nil
        if clientFraming == .chunked {
            head.withUnsafeBytes { hb in ChunkedEncoder.last.withUnsafeBytes { write(hb, $0) } }
        } else if !head.isEmpty {
            write(head)
        }
        endExchange()
    }

    // MARK: held answers

    /// The whole body is here: tag it, store the tag, answer 304 or 200 (RFC 9110 §13.2.2, §15.4.5).
    private func finishHeld() {
        guard let h = held, let head = response else { return }
        if pendingRefetch.waits {
            // concurrency.etag_after_write: refetch — the answer waits for the tag of the next GET.
            let body = h.bytes
            releaseHeld()
            writeAnswered(head, body: body, path: pendingRefetch.path)
            return
        }
        let tag: [UInt8]
        var stored = false
        let ours = keptTag == nil
        if let theirs = keptTag {
            tag = theirs
        } else if let (digest, hasher) = h.finish() {
            worker.returnHasher(hasher, used: false)
            tag = digest.quotedETag
            worker.counters.add(.hashed200)
            if read != nil { stored = storeInCache(digest, response: head) }
        } else {
            tag = worker.keyHasher.hash(h.bytes).quotedETag
        }
        let result = TaggedResponse(head: head, body: h.bytes, tag: tag, ours: ours, stored: stored)
        releaseHeld()
        settleFlight(result)
        respondTagged(result, collapsed: false)
    }

    /// Answers with a complete, tagged response: 304, 412 or the 200 with its ETag (RFC 9110 §13.2.2).
    func respondTagged(_ r: TaggedResponse, collapsed: Bool) {
        let http11 = clientIsHTTP11
        upstreamStatus = r.head.status
        var status = cacheStatusLine(status: r.head.status, stored: r.stored)
        if collapsed, status.count > 2 { status.insert(contentsOf: Array("; collapsed".utf8), at: status.count - 2) }
        var outcome = PreconditionOutcome.proceed
        if let read, !read.conditions.isEmpty, let method = request?.method,
            let current = EntityTagList.parse(r.tag).first
        {
            outcome = evaluatePreconditions(method: method, read.conditions, current: current)
        }
        switch outcome {
        case .notModified:
            worker.counters.add(.notModifiedAfterUpstream)
            statusSent = 304
            write(settings.rules.notModifiedHead(
                etag: r.tag, date: worker.date, fields: ForwardingRules.notModifiedFields(r.head), extra: status,
                keepAlive: keepAliveAfter, clientIsHTTP11: http11))
        case .preconditionFailed:
            responseStarted = false
            fail(412, "the If-Match condition does not match the current representation", keepAlive: true)
            return
        case .proceed:
            statusSent = r.head.status
            let isHeadRequest = request?.method == .head
            bodyBytesSent = isHeadRequest ? 0 : UInt64(r.body.count)
            writeHead(body: isHeadRequest ? [] : r.body) { w in
                settings.rules.clientResponseHead(
                    into: &w, r.head, framing: .length(UInt64(r.body.count)), keepAlive: keepAliveAfter,
                    clientIsHTTP11: http11, date: worker.date, dropETag: r.ours, etag: r.ours ? r.tag : nil,
                    extra: status)
            }
        }
        endExchange()
    }

    /// Ends the held body of the exchange, giving its hasher back to the worker.
    func releaseHeld() {
        if let h = held {
            held = nil
            keptTag = nil
            if let hasher = h.takeHasher() { worker.returnHasher(hasher, used: true) }
        }
    }
}

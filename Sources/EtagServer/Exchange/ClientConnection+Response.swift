import EtagCore
import EtagHTTP

/// Relaying the upstream's response to the client (RFC 9112 §6, §7; RFC 9110 §7.6).
extension ClientConnection {
    /// Bytes from the upstream connection of the current exchange; returns how many were used.
    func upstreamBytes(_ up: UpstreamConnection, _ buf: UnsafeRawBufferPointer) -> Int {
        if let g = guarded, g.stage == .prefetch || g.stage == .refetch { return fetchBytes(g, up, buf) }
        var off = 0
        if response == nil {
            while true {
                let rest = UnsafeRawBufferPointer(rebasing: buf[off...])
                do {
                    switch try ResponseParser.parse(
                        rest, requestMethod: upstreamMethod, limits: settings.responseLimits, storage: &responseStorage
                    ) {
                    case .incomplete:
                        return off
                    case .complete(let head, let used):
                        off += used
                        if head.isInterim { continue }  // 1xx: Expect is answered by the proxy itself
                        if head.status == 101 {
                            upstreamBroken(up, "the upstream switched protocols, which this proxy does not relay")
                            return buf.count
                        }
                        startResponse(head, up)
                    }
                } catch {
                    upstreamBroken(up, error.detail)
                    return buf.count
                }
                break
            }
        }
        while response != nil && upstream === up {
            if queuedBytes > settings.bufferSize {
                upstreamPausedForClient = true
                up.stopReading()
                arm(.send, settings.timeouts.send)
                return off
            }
            do {
                let (event, next) = try responseDecoder.next(buf, at: off)
                off = next
                switch event {
                case .data(let r):
                    let data = UnsafeRawBufferPointer(rebasing: buf[r])
                    if let h = hashing {
                        h.append(data)
                        if h.body.count > settings.maxHashedBody { hashingOverflowed(up) }
                    } else {
                        sendBody(data)
                    }
                case .needMore:
                    flushHead()
                    up.arm(.response, settings.timeouts.upstream)
                    return off
                case .end:
                    if hashing != nil {
                        finishHashed(up, leftover: buf.count - off)
                    } else {
                        finishResponse(up, leftover: buf.count - off)
                    }
                    return buf.count
                }
            } catch {
                // Broken framing mid-body: the client must not take a truncated body for a whole one.
                abort()
                return buf.count
            }
        }
        return buf.count
    }

    private func startResponse(_ head: ResponseHead, _ up: UpstreamConnection) {
        response = head
        upstreamStatus = head.status
        statusSent = head.status
        responseStarted = true
        up.arm(.response, settings.timeouts.upstream)
        responseDecoder = BodyDecoder(response: head.framing, maxTrailerSize: settings.responseLimits.maxTrailerSize)
        if !bodyDone || worker.draining { keepAliveAfter = false }
        guard let req = request else { return }
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
        var bufferIt = tagged && (!keepTheirs || !(read?.conditions.isEmpty ?? true) || read == nil)
        if case .length(let n) = head.framing, n > UInt64(settings.maxHashedBody) {
            bufferIt = false  // too large to hold: streamed unchanged, without an ETag
        }
        if bufferIt {
            var capacity = 16 * 1024
            if case .length(let n) = head.framing { capacity = Int(n) }
            hashing = BodyHashing(hasher: worker.takeHasher(), capacity: capacity, upstreamTag: keepTheirs ? upstreamTag : nil)
        } else {
            streamHead(head)
        }
    }

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
        if isHeadRequest, let up = upstream, head.framing != .none {
            // A HEAD fetched as GET whose body is not needed: answer now, drop the upstream connection.
            clientFraming = .none
            upstream = nil
            up.owner = nil
            up.close()
            flushHead()
            endExchange()
        }
    }

    /// The body grew past `etag.max_body` while being buffered: send it on without an ETag.
    private func hashingOverflowed(_ up: UpstreamConnection) {
        guard let h = hashing, let head = response else { return }
        let held = h.body
        releaseHashing()
        streamHead(head)
        guard upstream === up else { return }
        held.withUnsafeBytes { sendBody($0) }
    }

    /// The whole body is here: tag it, store the tag, answer 304 or 200 (RFC 9110 §13.2.2, §15.4.5).
    private func finishHashed(_ up: UpstreamConnection, leftover: Int) {
        guard let h = hashing, let head = response else { return }
        if pendingRefetch.waits {
            // concurrency.etag_after_write: refetch — the answer waits for the tag of the next GET.
            let body = h.body
            releaseHashing()
            releaseUpstream(up, leftover: leftover)
            writeAnswered(head, body: body, path: pendingRefetch.path)
            return
        }
        let tag: [UInt8]
        var stored = false
        if let theirs = h.upstreamTag {
            tag = theirs
        } else {
            let digest = h.hasher.finish()
            tag = digest.quotedETag
            worker.counters.add(.hashed200)
            if read != nil { stored = storeInCache(digest, response: head) }
        }
        releaseUpstream(up, leftover: leftover)
        let result = TaggedResponse(head: head, body: h.body, tag: tag, ours: h.upstreamTag == nil, stored: stored)
        releaseHashing(finished: true)
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

    private func finishResponse(_ up: UpstreamConnection, leftover: Int) {
        let head = pendingHead ?? []
        pendingHead = nil
        if clientFraming == .chunked {
            head.withUnsafeBytes { hb in ChunkedEncoder.last.withUnsafeBytes { write(hb, $0) } }
        } else if !head.isEmpty {
            write(head)
        }
        releaseUpstream(up, leftover: leftover)
        endExchange()
    }

    /// Returns a cleanly finished upstream connection to the pool, or closes it.
    func releaseUpstream(_ up: UpstreamConnection, leftover: Int, keepAlive: Bool? = nil) {
        let reusable = (keepAlive ?? response?.keepAlive ?? false) && bodyDone && leftover == 0 && !up.isClosing
        upstream = nil
        upstreamPausedForClient = false
        if reusable {
            up.stopTimer()
            worker.pool.release(up)
        } else {
            up.owner = nil
            up.close()
        }
    }

    // MARK: upstream failures

    /// The upstream closed (error nil) or failed while this exchange used it.
    func upstreamEnded(_ up: UpstreamConnection, error: Int32?) {
        guard upstream === up else { return up.close() }
        if let g = guarded, g.stage == .prefetch || g.stage == .refetch {
            // A stale pooled connection: the GET is retried once on a fresh one.
            if g.fetchHead == nil && retryOnFreshConnection(up) { return }
            return fetchFailed("the upstream closed the connection during the \(g.stage == .prefetch ? "pre-fetch" : "re-fetch")")
        }
        if response != nil {
            // RFC 9112 §6.3 item 8: a close-delimited body ends here; any other body is truncated.
            if error == nil && responseDecoder.finishAtClose() {
                if hashing != nil { finishHashed(up, leftover: 0) } else { finishResponse(up, leftover: 0) }
            } else if hashing != nil {
                upstream = nil
                up.owner = nil
                up.close()
                fail(502, "the upstream closed the connection in the middle of the body", keepAlive: true)
            } else {
                abort()
            }
            return
        }
        if retryOnFreshConnection(up) { return }
        upstream = nil
        up.owner = nil
        up.close()
        fail(502, "the upstream closed the connection without a response", keepAlive: true)
    }

    /// A pooled connection that turns out closed is retried once on a new one, for idempotent requests
    /// without a body (RFC 9110 §9.2.2, RFC 9112 §9.3.1).
    func retryOnFreshConnection(_ up: UpstreamConnection) -> Bool {
        guard let head = retryHead, up.exchanges > 0, !up.receivedResponseBytes else { return false }
        retryHead = nil
        upstream = nil
        up.owner = nil
        up.close()
        sendToUpstream(head)
        return true
    }

    func upstreamUnreachable(_ up: UpstreamConnection, _ code: Int32) {
        guard upstream === up else { return }
        upstream = nil
        if let g = guarded, g.stage == .prefetch || g.stage == .refetch {
            return fetchFailed("the upstream is unreachable: \(UVError.name(code))")
        }
        fail(502, "the upstream is unreachable: \(UVError.name(code))", keepAlive: true)
    }

    func upstreamTimedOut(_ up: UpstreamConnection, connecting: Bool) {
        guard upstream === up else { return up.close() }
        upstream = nil
        up.owner = nil
        up.close()
        if let g = guarded, g.stage == .prefetch || g.stage == .refetch {
            return fetchFailed("the upstream did not answer the \(g.stage == .prefetch ? "pre-fetch" : "re-fetch") in time", status: 504)
        }
        if response != nil && hashing == nil {
            abort()
        } else if connecting {
            fail(504, "connecting to the upstream timed out", keepAlive: true)
        } else {
            fail(504, "the upstream did not answer within the upstream timeout", keepAlive: true)
        }
    }

    private func upstreamBroken(_ up: UpstreamConnection, _ detail: String) {
        upstream = nil
        up.owner = nil
        up.close()
        if responseStarted && pendingHead == nil && hashing == nil {
            abort()
        } else {
            pendingHead = nil
            responseStarted = false
            fail(502, "invalid response from the upstream: \(detail)", keepAlive: true)
        }
    }

    // MARK: local answers

    /// A request that could not be parsed: answer its status and close (RFC 9112 §2.2, §6.3).
    func rejectRequest(_ error: HTTPParseError) {
        if request == nil { exchangeStart = worker.now }
        fail(error.status, error.detail)
    }

    /// Answers the exchange with a problem+json error and closes the connection afterwards. When part of the
    /// response has already gone out, the connection is closed instead (never a silently truncated response).
    /// - Parameter keepAlive: keep the connection for the next request (an upstream failure after the whole
    ///   request was read); malformed or unread input always closes it.
    func fail(_ status: Int, _ detail: String, keepAlive: Bool = false) {
        let nothingSent = hashing != nil || pendingHead != nil || !responseStarted
        releaseHashing()
        if let up = upstream {
            upstream = nil
            up.owner = nil
            up.close()
        }
        if !nothingSent {
            abort()
            return
        }
        pendingHead = nil
        statusSent = status
        keepAliveAfter = keepAliveAfter && keepAlive && bodyDone && request != nil
        let problem = Problem(status: status, detail: detail)
        write(problem.response(close: !keepAliveAfter, date: worker.date, headOnly: request?.method == .head))
        bodyBytesSent = 0
        endExchange()
    }

    /// Drops the exchange and the connection at once (reset mid-body, client gone).
    func abort() {
        if let up = upstream {
            upstream = nil
            up.owner = nil
            up.close()
        }
        if request != nil {
            if statusSent == 0 { statusSent = 499 }
            worker.accessLog.record(self, aborted: true)
            leaveFlight()
            releaseGuard(abandoned: true)
            request = nil
        }
        close()
    }
}

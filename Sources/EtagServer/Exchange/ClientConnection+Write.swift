import EtagCache
import EtagCore
import EtagHTTP

/// Which resource a write's answer re-fetches for its ETag.
enum Refetch {
    case none
    /// The request's own target.
    case target
    /// The Location a POST created.
    case location([UInt8])

    var waits: Bool {
        if case .none = self { return false }
        return true
    }

    var path: [UInt8]? {
        if case .location(let p) = self { return p }
        return nil
    }
}

extension ClientConnection {
    /// Starts a guarded write for PUT/PATCH/DELETE (`concurrency.methods`). Returns true when it took over the
    /// exchange (including answering 428).
    func beginGuardedWrite(_ head: RequestHead) -> Bool {
        guard settings.concurrencyEnabled, settings.guardedMethods.contains(head.method) else { return false }
        let conditions = Conditions(head.head)
        // RFC 6585 §3: 428 when the origin requires conditional writes and none was sent. A create-only
        // `If-None-Match: *` is a precondition too.
        if settings.enforceIfMatch && conditions.ifMatch == nil && conditions.ifNoneMatch?.isAny != true {
            fail(428, "This resource requires a conditional write: GET it, then send its ETag in If-Match.",
                 keepAlive: bodyDone)
            return true
        }
        let uri = settings.keyBuilder.uriDigest(head)
        guarded = GuardedWrite(connection: self, conditions: conditions, leased: true, uri: uri)
        if bodyDone { startGuardedWrite() }
        return true
    }

    /// The request body is complete: wait for the resource's lease.
    func startGuardedWrite() {
        guard let g = guarded else { return }
        g.stage = .lease
        phase = .awaitingResponse
        if worker.leases.acquire(g.uri, for: g) {
            g.holdsLease = true
            leaseAcquired()
        } else {
            g.queued = true
        }
    }

    /// The lease is this write's (`holdsLease` is set, so closing releases it): check the write, or send it.
    func leaseAcquired() {
        guard let g = guarded, g.stage == .lease, !isClosing else { return }
        if g.checks { startFetch(path: nil, stage: .prefetch) } else { sendGuardedWrite() }
    }

    private func startFetch(path: [UInt8]?, stage: GuardedWrite.Stage) {
        guard let g = guarded, let req = request else { return }
        g.stage = stage
        g.resetFetch(worker)
        response = nil
        responseStarted = false
        let head = settings.rules.fetchHead(req, clientIP: peerIP, path: path)
        startUpstream(head, method: .get, replayable: true, complete: true, delegate: g)
    }

    /// A pre-fetch or re-fetch failed (upstream gone, timed out, broken): a failed pre-fetch is answered 502/504
    /// and the write is not sent; after a failed re-fetch the (successful) write is answered without an ETag.
    func fetchFailed(_ detail: String, status: Int = 502) {
        guard let g = guarded else { return }
        detachUpstream()
        if g.stage == .refetch {
            // The write succeeded: answer it, just without an ETag.
            respondToWrite(tag: nil)
        } else {
            fail(status, detail, keepAlive: true)
        }
    }

    /// RFC 9110 §13.2.1: preconditions are evaluated only when the answer without them would be 2xx or 412;
    /// a 404/410 means no current representation; anything else is relayed and the write not sent.
    func prefetchDone(_ g: GuardedWrite) {
        guard let head = g.fetchHead, let req = request else { return }
        var current: EntityTag? = nil
        var currentText: [UInt8]? = nil
        switch head.status {
        case 200..<300:
            guard !g.fetchTooLarge else {
                return fail(502, "the resource is larger than etag.max_body, so If-Match cannot be checked", keepAlive: true)
            }
            let tag = g.currentTag(worker).text
            currentText = tag
            current = EntityTagList.parse(tag).first
        case 404, 410:
            current = nil
        default:
            return relayFetched(head, g.fetchBody?.bytes ?? [])
        }
        switch evaluatePreconditions(method: req.method, g.conditions, current: current) {
        case .preconditionFailed, .notModified:
            answer412(current: currentText)
        case .proceed:
            sendGuardedWrite()
        }
    }

    /// 412 with the current tag, so the client knows what it lost to (RFC 9457 extension member `etag`).
    private func answer412(current: [UInt8]?) {
        let tag = current.map { String(decoding: $0, as: UTF8.self) }
        let detail = tag == nil
            ? "The resource does not exist (any more): GET the collection again before writing."
            : "The resource has changed since you fetched it: GET it again and retry with its current ETag in If-Match."
        let problem = Problem(status: 412, detail: detail, extensions: [("etag", tag)])
        statusSent = 412
        var extra: [UInt8] = []
        if let current { extra = Array("ETag: ".utf8) + current + [13, 10] }
        write(problem.response(close: !keepAliveAfter, date: worker.date, extraFields: extra))
        endExchange()
    }

    /// A pre-fetch answered 401/403/3xx/5xx…: relayed as it is; the write is not sent.
    private func relayFetched(_ head: ResponseHead, _ body: [UInt8]) {
        statusSent = head.status
        upstreamStatus = head.status
        let bytes = settings.rules.clientResponseHead(
            head, framing: .length(UInt64(body.count)), keepAlive: keepAliveAfter,
            clientIsHTTP11: clientIsHTTP11, date: worker.date, dropETag: settings.etagMode == .replace)
        bodyBytesSent = UInt64(body.count)
        bytes.withUnsafeBytes { hb in body.withUnsafeBytes { write(hb, $0) } }
        endExchange()
    }

    private func sendGuardedWrite() {
        guard let g = guarded, let req = request else { return }
        g.stage = .write
        g.resetFetch(worker)
        response = nil
        responseStarted = false
        var bytes = settings.rules.upstreamRequestHead(
            req, clientIP: peerIP, dropTagConditions: true, bodyLength: g.body.count)
        bytes.append(contentsOf: g.body)
        g.body = []
        // The whole request is at hand: an idempotent one (PUT, DELETE) is replayed once if a pooled connection
        // turns out closed before any answer (RFC 9110 §9.2.2).
        startUpstream(bytes, method: req.method, replayable: req.method.isIdempotent, complete: true, delegate: self)
    }

    /// What a write's answer waits for before it goes out (`concurrency.etag_after_write: refetch`).
    func refetch(after head: ResponseHead) -> Refetch {
        guard settings.etagAfterWrite == .refetch, let req = request, head.status >= 200, head.status < 300 else {
            return .none
        }
        switch req.method {
        case .delete:
            return .none
        case .post:
            // A 201 with a same-origin Location: that is the new resource.
            guard head.status == 201, let loc = head.head.firstValue("location") else { return .none }
            let host = req.hostRange.map { Array(req.head.bytes[$0]) } ?? []
            guard let path = CacheKeyBuilder.sameOriginPath(Array(head.head.bytes[loc]), host: host) else { return .none }
            return .location(path)
        default:
            return .target
        }
    }

    /// The write's answer is complete: re-fetch inside the lease, then answer with the new tag.
    func writeAnswered(_ head: ResponseHead, body: [UInt8], path: [UInt8]?) {
        if guarded == nil, let req = request {
            guarded = GuardedWrite(
                connection: self, conditions: Conditions(), leased: false, uri: settings.keyBuilder.uriDigest(req))
        }
        guard let g = guarded else { return }
        g.writeResponse = (head, body)
        g.refetchPath = path
        startFetch(path: path, stage: .refetch)
    }

    func refetchDone(_ g: GuardedWrite) {
        guard let head = g.fetchHead, let req = request else { return respondToWrite(tag: nil) }
        guard head.status == 200, !g.fetchTooLarge else { return respondToWrite(tag: nil) }
        let current = g.currentTag(worker)
        let tag = current.text
        if let digest = current.digest {
            worker.counters.add(.hashed200)
            // The next GET finds this tag in the cache (stored after the write's invalidation).
            let keys = settings.keyBuilder
            let host = req.hostRange.map { Array(req.head.bytes[$0]) } ?? []
            let path = g.refetchPath ?? Array(req.head.bytes[req.pathRange])
            let uri = keys.uriDigest(host: host, path: path)
            let key = keys.keyDigest(req, path: g.refetchPath, hasher: worker.keyHasher)
            if storeTag(digest, key: key, generation: worker.cache.generation(uri: uri), response: head) {
                worker.counters.add(.stored)
            }
        }
        respondToWrite(tag: tag)
    }

    /// Sends the upstream's answer to the write, with `tag` as its ETag when there is one.
    func respondToWrite(tag: [UInt8]?) {
        guard let (head, body) = guarded?.writeResponse else { return fail(502, "lost the write response") }
        statusSent = head.status
        upstreamStatus = head.status
        let framing: ForwardingRules.ClientFraming = head.status == 204 ? .none : .length(UInt64(body.count))
        let bytes = settings.rules.clientResponseHead(
            head, framing: framing, keepAlive: keepAliveAfter, clientIsHTTP11: clientIsHTTP11,
            date: worker.date, dropETag: settings.etagMode == .replace || tag != nil, etag: tag)
        bodyBytesSent = UInt64(body.count)
        bytes.withUnsafeBytes { hb in body.withUnsafeBytes { write(hb, $0) } }
        endExchange()
    }

    /// Frees the lease (waking the next writer) or leaves the queue; idempotent.
    /// - Parameter abandoned: the exchange is being dropped; if its write may be on its way upstream, the lease
    ///   is left to expire instead of being freed at once.
    func releaseGuard(abandoned: Bool = false) {
        guard let g = guarded else { return }
        guarded = nil
        g.resetFetch(worker)
        if g.holdsLease {
            g.holdsLease = false
            worker.leases.release(g.uri, letExpire: abandoned && g.stage == .write)
        } else if g.queued {
            g.queued = false
            worker.leases.stopWaiting(g, for: g.uri)
        }
    }
}

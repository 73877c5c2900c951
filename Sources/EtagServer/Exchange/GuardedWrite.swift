internal import CLibUV
import EtagCore
import EtagHTTP

/// A write checked against its resource's current representation (RFC 9110 §13.1.1, §13.2; RFC 6585 §3):
/// body buffered, lease taken, pre-fetch hashed and compared (`WriteCheck`), then the write, then the re-fetch
/// whose ETag the client gets — all inside the lease, so concurrent writers to one resource are serialized.
///
/// Owned by its client connection (`ClientConnection.guarded`), which it refers to `unowned(unsafe)`: the
/// connection ends it (`end`) before it goes away. It is the delegate of the upstream connection of its
/// pre-fetch and re-fetch, whose whole response it collects; the write itself goes out through a `Relay`.
/// Worker thread only.
final class GuardedWrite {
    enum Stage { case body, lease, prefetch, write, refetch }
    unowned(unsafe) let connection: ClientConnection
    private(set) var stage = Stage.body
    /// The request body, read whole before the lease is asked for: appended to by the connection's reads, taken by
    /// `sendWrite`, never across a callback (no dynamic exclusivity check).
    @exclusivity(unchecked) var body: [UInt8] = []
    private let conditions: Conditions
    /// Preconditions to evaluate (If-Match / If-None-Match present).
    private let checks: Bool
    /// The resource (its URI digest) whose lease serializes the write.
    private let uri: Digest20
    private var holdsLease = false
    private var queued = false
    /// When the lease was asked for (`uv_hrtime`).
    private var leaseAskedAt: UInt64 = 0
    // The pre-fetch or re-fetch in progress. Its head and body are assigned and read whole, by this object's
    // calls on the worker thread, never passed `inout`: no dynamic exclusivity check.
    private var upstream: UpstreamConnection?
    @exclusivity(unchecked) private var fetchHead: ResponseHead?
    @exclusivity(unchecked) private var fetchBody: HeldBody?
    private var fetchTooLarge = false
    /// The upstream's answer to the write, held while the re-fetch runs, and what it re-fetches.
    private var writeResponse: (head: ResponseHead, body: HeldBytes)?
    private var refetchPath: [UInt8]?

    private init(connection: ClientConnection, conditions: Conditions, leased: Bool, uri: Digest20) {
        self.connection = connection
        self.conditions = conditions
        self.checks = leased && !conditions.isEmpty
        self.uri = uri
    }

    private var worker: Worker { connection.worker }
    private var settings: ExchangeSettings { connection.settings }

    /// The write has not gone upstream yet: a client that goes away cancels it.
    var notYetSent: Bool { stage == .lease || stage == .prefetch }

    /// Starts a guarded write for the methods of `concurrency.methods`. Returns true when it took over the
    /// exchange (including answering 428).
    static func begin(_ head: RequestHead, on c: ClientConnection) -> Bool {
        let settings = c.settings
        guard settings.concurrencyEnabled, settings.guardedMethods.contains(head.method) else { return false }
        let conditions = Conditions(head.head)
        // RFC 6585 §3: 428 when the origin requires conditional writes and none was sent. A create-only
        // `If-None-Match: *` is a precondition too.
        if settings.enforceIfMatch && conditions.ifMatch == nil && conditions.ifNoneMatch?.isAny != true {
            c.worker.metrics.add(MetricsLayout.writeCheck(.preconditionRequired))
            c.record.writeCheck = .preconditionRequired
            c.fail(
                428, "This resource requires a conditional write: GET it, then send its ETag in If-Match.",
                keepAlive: c.bodyDone)
            return true
        }
        let g = GuardedWrite(
            connection: c, conditions: conditions, leased: true, uri: settings.keyBuilder.uriDigest(head))
        c.guarded = g
        if c.bodyDone { g.bodyComplete() }
        return true
    }

    /// The request body is complete: wait for the resource's lease.
    func bodyComplete() {
        stage = .lease
        leaseAskedAt = uv_hrtime()
        if worker.exchanges.leases.acquire(uri, for: self) {
            holdsLease = true
            leaseAcquired()
        } else {
            queued = true
        }
    }

    /// The lease is this write's (`holdsLease` is set, so ending releases it): check the write, or send it.
    private func leaseAcquired() {
        guard stage == .lease, !connection.isClosing else { return }
        worker.metrics.observe(MetricsLayout.leaseWait, ns: uv_hrtime() &- leaseAskedAt)
        if checks {
            startFetch(path: nil, stage: .prefetch)
        } else {
            count(.relayed)
            sendWrite()
        }
    }

    private func startFetch(path: [UInt8]?, stage: Stage) {
        guard let req = connection.request else { return }
        self.stage = stage
        resetFetch()
        let head = fetchHead(req, path: path)
        if stage == .refetch, let up = worker.pool.takePipelined(head) {
            // Sent right behind the write (`Refetch.pipelines`): its answer is next on the write's connection.
            worker.metrics.add(.refetchesPipelined)
            upstream = up
            up.takeOffered(kind: .refetch, delegate: self)
            return
        }
        let up = worker.pool.acquire()
        upstream = up
        up.begin(
            head, method: .get, replayable: true, complete: true, kind: stage == .prefetch ? .prefetch : .refetch,
            delegate: self)
    }

    private func fetchHead(_ req: RequestHead, path: [UInt8]?) -> [UInt8] {
        settings.rules.fetchHead(req, clientIP: connection.peerIP, path: path, requestIdLine: connection.requestIdLine)
    }

    /// Forgets the last fetch, giving its hasher back to the worker.
    private func resetFetch() {
        if let hasher = fetchBody?.takeHasher() { worker.exchanges.returnHasher(hasher, used: true) }
        fetchHead = nil
        fetchBody = nil
        fetchTooLarge = false
    }

    /// The fetched representation's tag (`RepresentationTag`), and its digest when it is the proxy's own.
    private func currentTag() -> (text: [UInt8], digest: Digest20?) {
        var digest: Digest20? = nil
        let text = RepresentationTag.current(
            etagMode: settings.etagMode, upstreamTag: fetchHead.flatMap(ForwardingRules.upstreamETag)
        ) {
            if let (d, hasher) = fetchBody?.finish() {
                worker.exchanges.returnHasher(hasher, used: false)
                digest = d
            } else {
                let hasher = worker.exchanges.keyHasher
                digest = (fetchBody?.bytes ?? HeldBytes()).withUnsafeBytes { hasher.hash($0) }
            }
            return digest!
        }
        return (text, digest)
    }

    /// The pre-fetch answered: send the write, or answer 412, the pre-fetch's own answer, or 502.
    private func prefetchDone() {
        guard let head = fetchHead, let req = connection.request else { return }
        let compared = head.status >= 200 && head.status < 300 && !fetchTooLarge
        let verdict = WriteCheck.decide(
            method: req.method, conditions: conditions, status: head.status, tooLarge: fetchTooLarge,
            currentTag: compared ? currentTag().text : nil)
        switch verdict {
        case .send:
            count(.passed)
            sendWrite()
        case .preconditionFailed(let current):
            count(.preconditionFailed)  // a lost update prevented
            connection.answer412(current: current)
        case .relayPrefetch:
            count(.error)
            connection.respond(head, body: fetchBody?.bytes, tag: nil)
        case .tooLarge:
            count(.error)
            connection.fail(
                502, "the resource is larger than etag.max_body, so If-Match cannot be checked",
                keepAlive: true)
        }
    }

    private func sendWrite() {
        guard let req = connection.request else { return }
        stage = .write
        resetFetch()
        var bytes = settings.rules.upstreamRequestHead(
            req, clientIP: connection.peerIP, dropTagConditions: true, bodyLength: body.count,
            requestIdLine: connection.requestIdLine)
        bytes.append(contentsOf: body)
        body = []
        // The re-fetch of the target, sent right behind the write when configured: one upstream round trip fewer.
        let pipelined =
            Refetch.pipelines(method: req.method, mode: settings.etagAfterWrite, enabled: settings.pipelineRefetch)
            ? fetchHead(req, path: nil) : nil
        // The whole request is at hand: an idempotent one (PUT, DELETE) is replayed once if a pooled connection
        // turns out closed before any answer (RFC 9110 §9.2.2).
        connection.forward(bytes, method: req.method, replayable: req.method.isIdempotent, pipelined: pipelined)
    }

    /// A write's answer is complete and waits for its tag (`Refetch`): re-fetch inside the lease — a write
    /// outside `concurrency.methods` (a POST) gets an unleased guarded write for it — then answer.
    static func refetch(after head: ResponseHead, body: HeldBytes, path: [UInt8]?, on c: ClientConnection) {
        if c.guarded == nil, let req = c.request {
            c.guarded = GuardedWrite(
                connection: c, conditions: Conditions(), leased: false, uri: c.settings.keyBuilder.uriDigest(req))
        }
        guard let g = c.guarded else { return }
        g.writeResponse = (head, body)
        g.refetchPath = path
        g.startFetch(path: path, stage: .refetch)
    }

    private func refetchDone() {
        guard let head = fetchHead, let req = connection.request else { return respondToWrite(tag: nil) }
        guard head.status == 200, !fetchTooLarge else { return respondToWrite(tag: nil) }
        let current = currentTag()
        if let digest = current.digest {
            worker.exchanges.metrics.add(.hashedResponses)
            // The next GET finds this tag in the cache (stored after the write's invalidation).
            let keys = settings.keyBuilder
            let host = req.hostRange.map { Array(req.head.bytes[$0]) } ?? []
            let path = refetchPath ?? Array(req.head.bytes[req.pathRange])
            let uri = keys.uriDigest(host: host, path: path)
            let key = keys.keyDigest(req, path: refetchPath, hasher: worker.exchanges.keyHasher)
            _ = ReadCache.store(
                digest, key: key, generation: worker.exchanges.cache.generation(uri: uri), response: head,
                directives: ResponseCacheDirectives(head.head), request: req, context: worker.exchanges)
        }
        respondToWrite(tag: current.text)
    }

    /// A pre-fetch or re-fetch failed (upstream gone, timed out, broken): a failed pre-fetch is answered 502/504
    /// and the write is not sent; after a failed re-fetch the (successful) write is answered without an ETag.
    private func fetchFailed(_ detail: String, status: Int = 502) {
        if stage == .refetch {
            respondToWrite(tag: nil)
        } else {
            count(.error)
            connection.fail(status, detail, keepAlive: true)
        }
    }

    private func count(_ result: MetricsLayout.WriteCheckResult) {
        worker.metrics.add(MetricsLayout.writeCheck(result))
        connection.record.writeCheck = result
    }

    /// Sends the upstream's answer to the write, with `tag` as its ETag when there is one.
    private func respondToWrite(tag: [UInt8]?) {
        guard let (head, body) = writeResponse else { return connection.fail(502, "lost the write response") }
        connection.respond(head, body: body, tag: tag)
    }

    /// Ends the guarded write: the fetch is dropped, the lease freed (waking the next writer) or the queue
    /// left. Idempotent.
    /// - Parameter abandoned: the exchange is being dropped; if its write may be on its way upstream, the lease
    ///   is left to expire instead of being freed at once.
    func end(abandoned: Bool) {
        if let up = upstream {
            upstream = nil
            up.detach()
        }
        resetFetch()
        if holdsLease {
            holdsLease = false
            worker.exchanges.leases.release(uri, letExpire: abandoned && stage == .write)
        } else if queued {
            queued = false
            worker.exchanges.leases.stopWaiting(self, for: uri)
        }
    }
}

extension GuardedWrite: LeaseWaiter {
    func leaseGranted() {
        queued = false
        holdsLease = true
        leaseAcquired()
    }

    func leaseWaitExpired() {
        queued = false
        worker.metrics.add(.leaseTimeouts)
        count(.error)
        connection.fail(503, "Another write to this resource is taking too long; retry later.", keepAlive: true)
    }

    func leaseStoreUnreachable() {
        queued = false
        count(.error)
        // fleet.on_redis_down: fail_closed — nothing is written upstream while one writer cannot be guaranteed.
        connection.fail(
            503,
            "the fleet lock store is unreachable, so this write cannot be serialized with the other replicas; "
                + "retry later", keepAlive: true)
    }
}

extension GuardedWrite: UpstreamClientDelegate {
    func upstreamTook(ns: UInt64) { connection.record.upstreamNs &+= ns }

    func upstreamReceivedHead(_ head: ResponseHead) -> UpstreamBodyMode {
        fetchHead = head
        // Only a 2xx is compared (RFC 9110 §13.2.1) and only a 200 re-fetch tags the write; the upstream's
        // own tag, when kept, needs no digest.
        let compared = head.status >= 200 && head.status < 300
        let keepTheirs = settings.etagMode == .keep && ForwardingRules.upstreamETag(head) != nil
        var expected: Int? = nil
        if case .length(let n) = head.framing { expected = Int(truncatingIfNeeded: n) }
        let held = HeldBody(
            limit: settings.maxHashedBody, expected: expected,
            hasher: compared && !keepTheirs ? worker.exchanges.takeHasher() : nil, memory: worker.exchanges.heldMemory,
            unrefused: .max)
        fetchBody = held
        return .hold(held)
    }

    func upstreamHeldBodyOverflowed() -> UpstreamBodyMode {
        fetchTooLarge = true
        return .discard
    }

    func upstreamFinished() {
        upstream = nil
        if stage == .prefetch { prefetchDone() } else { refetchDone() }
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        upstream = nil
        let which = stage == .prefetch ? "pre-fetch" : "re-fetch"
        switch failure {
        case .unreachable(let code):
            fetchFailed("the upstream is unreachable: \(UVError.name(code))")
        case .unresolved(let code):
            fetchFailed("cannot resolve the upstream host \(worker.resolver.host): \(UVError.name(code))")
        case .connectTimedOut, .handshakeTimedOut, .timedOut:
            fetchFailed("the upstream did not answer the \(which) in time", status: 504)
        case .closed:
            fetchFailed("the upstream closed the connection during the \(which)")
        case .broken(let detail):
            fetchFailed("invalid response from the upstream: \(detail)")
        case .tls(let detail):
            fetchFailed("TLS with the upstream failed: \(detail)")
        }
    }

    func upstreamRetried(on fresh: UpstreamConnection) {
        upstream = fresh
    }
}

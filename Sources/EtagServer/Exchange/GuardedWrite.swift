import EtagCore
import EtagHTTP

/// A write checked against its resource's current representation (RFC 9110 §13.1.1, §13.2; RFC 6585 §3):
/// body buffered, lease taken, pre-fetch hashed and compared, then the write, then the re-fetch whose ETag the
/// client gets — all inside the lease, so concurrent writers to one resource are serialized.
///
/// Owned by its client connection (`ClientConnection.guarded`), which it refers to `unowned`: the connection
/// ends the guarded write (`releaseGuard`) before it goes away. It is the delegate of the upstream connection
/// for the pre-fetch and the re-fetch, whose whole response it collects. Worker thread only.
final class GuardedWrite {
    enum Stage { case body, lease, prefetch, write, refetch }
    unowned let connection: ClientConnection
    var stage = Stage.body
    var body: [UInt8] = []
    let conditions: Conditions
    /// Preconditions to evaluate (If-Match / If-None-Match present).
    let checks: Bool
    /// Serialized with a lease (PUT/PATCH/DELETE); false for a POST that is only re-fetched after a 201.
    let leased: Bool
    let uri: Digest20
    var holdsLease = false
    var queued = false
    // The pre-fetch or re-fetch in progress.
    private(set) var fetchHead: ResponseHead?
    private(set) var fetchBody: HeldBody?
    private(set) var fetchTooLarge = false
    /// The upstream's answer to the write, held while the re-fetch runs.
    var writeResponse: (head: ResponseHead, body: [UInt8])?
    var refetchPath: [UInt8]?

    init(connection: ClientConnection, conditions: Conditions, leased: Bool, uri: Digest20) {
        self.connection = connection
        self.conditions = conditions
        self.checks = leased && !conditions.isEmpty
        self.leased = leased
        self.uri = uri
    }

    /// Forgets the last fetch, giving its hasher back to the worker.
    func resetFetch(_ worker: Worker) {
        if let hasher = fetchBody?.takeHasher() { worker.returnHasher(hasher, used: true) }
        fetchHead = nil
        fetchBody = nil
        fetchTooLarge = false
    }

    /// The fetched representation's tag: the upstream's own (`etag.upstream: keep`) or the digest of its body.
    func currentTag(_ worker: Worker) -> (text: [UInt8], digest: Digest20?) {
        if worker.settings.etagMode == .keep, let head = fetchHead, let theirs = ForwardingRules.upstreamETag(head) {
            return (theirs, nil)
        }
        if let (digest, hasher) = fetchBody?.finish() {
            worker.returnHasher(hasher, used: false)
            return (digest.quotedETag, digest)
        }
        let digest = worker.keyHasher.hash(fetchBody?.bytes ?? [])
        return (digest.quotedETag, digest)
    }
}

extension GuardedWrite: LeaseWaiter {
    func leaseGranted() {
        queued = false
        holdsLease = true
        connection.leaseAcquired()
    }

    func leaseWaitExpired() {
        queued = false
        connection.fail(503, "Another write to this resource is taking too long; retry later.", keepAlive: true)
    }
}

extension GuardedWrite: UpstreamClientDelegate {
    func upstreamReceivedHead(_ head: ResponseHead) -> UpstreamBodyMode {
        let worker = connection.worker
        fetchHead = head
        // Only a 2xx is compared (RFC 9110 §13.2.1) and only a 200 re-fetch tags the write; the upstream's
        // own tag, when kept, needs no digest.
        let compared = head.status >= 200 && head.status < 300
        let keepTheirs = worker.settings.etagMode == .keep && ForwardingRules.upstreamETag(head) != nil
        var expected: Int? = nil
        if case .length(let n) = head.framing { expected = Int(truncatingIfNeeded: n) }
        let held = HeldBody(limit: worker.settings.maxHashedBody, expected: expected,
                            hasher: compared && !keepTheirs ? worker.takeHasher() : nil)
        fetchBody = held
        return .hold(held)
    }

    func upstreamHeldBodyOverflowed() -> UpstreamBodyMode {
        fetchTooLarge = true
        return .discard
    }

    func upstreamFinished() {
        connection.upstream = nil
        if stage == .prefetch { connection.prefetchDone(self) } else { connection.refetchDone(self) }
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        connection.upstream = nil
        let which = stage == .prefetch ? "pre-fetch" : "re-fetch"
        switch failure {
        case .unreachable(let code):
            connection.fetchFailed("the upstream is unreachable: \(UVError.name(code))")
        case .connectTimedOut, .timedOut:
            connection.fetchFailed("the upstream did not answer the \(which) in time", status: 504)
        case .closed:
            connection.fetchFailed("the upstream closed the connection during the \(which)")
        case .broken(let detail):
            connection.fetchFailed("invalid response from the upstream: \(detail)")
        }
    }

    func upstreamRetried(on fresh: UpstreamConnection) {
        connection.upstream = fresh
    }
}

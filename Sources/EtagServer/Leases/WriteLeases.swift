import EtagCore

/// Who waits for a write lease: told once, on the worker's thread and never inside `acquire`, that it holds
/// the lease or that `concurrency.lease_wait` passed first.
protocol LeaseWaiter: AnyObject {
    func leaseGranted()
    func leaseWaitExpired()
    /// The store that holds the leases (the fleet's Redis) cannot be asked and the write must not go on.
    func leaseStoreUnreachable()
}

/// Write leases serialize the writes to one resource (its URI digest) across every worker, process — and,
/// with another implementation, replica — that shares them. One instance per worker; worker thread only.
///
/// Protocol: `acquire` grants at once or queues the waiter (FIFO per resource on this worker, so one request
/// to the shared store is made per waiting resource, not per waiter); a holder calls `release` exactly once.
/// Held leases are renewed by the implementation until released.
protocol WriteLeases: AnyObject {
    /// Takes the lease of `resource` now (true) or queues `waiter` (false), which then hears `leaseGranted`
    /// or `leaseWaitExpired`.
    func acquire(_ resource: Digest20, for waiter: any LeaseWaiter) -> Bool
    /// Frees a held lease and wakes the next writer. With `letExpire`, the lease is only no longer renewed: it
    /// frees itself after `concurrency.lease_ttl` (a write that may still land upstream after its client left).
    func release(_ resource: Digest20, letExpire: Bool)
    /// A queued waiter gives up (its client went away).
    func stopWaiting(_ waiter: any LeaseWaiter, for resource: Digest20)
    /// New `concurrency.lease_ttl` and `lease_wait` (a reload), for the leases asked for from now on.
    func configure(ttl: Int, maxWait: Int)
    /// Stops the timers (the worker is finishing).
    func close()
}

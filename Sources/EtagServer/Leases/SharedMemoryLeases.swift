internal import CLibUV
internal import CEtagShim
import EtagCache
import EtagCore
#if canImport(Glibc)
import Glibc
#endif

/// Write leases in the shared-memory region (one lease word per stripe of resources, see `SharedCache`), with
/// this worker's queue of waiting writers per stripe in front of them.
///
/// Ownership: one per worker, created and used on its thread only. Owns two libuv timers on the worker's loop
/// (renewal every third of `lease_ttl`, unreferenced; polling a lease held elsewhere, with backoff from 1 to
/// 50 ms); `close()` closes both, and their memory is freed in `deinit` once the loop has closed them.
/// Waiters are referenced `unowned(unsafe)`: a waiter calls `stopWaiting` before it goes away.
final class SharedMemoryLeases: WriteLeases {
    private struct Waiter {
        unowned(unsafe) let waiter: any LeaseWaiter
        let since: UInt64
    }

    private struct Queue {
        var waiters: [Waiter] = []
        /// When the head polls the lease word next (loop ms), and how long it waited last.
        var nextPoll: UInt64 = 0
        var backoff: UInt64 = 1
    }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let cache: SharedCache
    /// `concurrency.lease_ttl` and `lease_wait`, replaced by a reload (SIGHUP) for the leases asked for next.
    var ttl: Int
    var maxWait: UInt64
    private let pid = getpid()
    /// Leases held by this worker: stripe → lease word. The two tables are touched on the worker's thread only,
    /// and no waiter is called while one is being accessed (`poll` calls them after the update): their dynamic
    /// exclusivity checks (five per checked write) are left out.
    @exclusivity(unchecked) private var held: [Int: UInt64] = [:]
    @exclusivity(unchecked) private var queues: [Int: Queue] = [:]
    private let renewTimer: UnsafeMutablePointer<uv_timer_t> = .allocate(capacity: 1)
    private let pollTimer: UnsafeMutablePointer<uv_timer_t> = .allocate(capacity: 1)
    private var pollScheduled: UInt64 = 0
    private var closed = false

    func configure(ttl: Int, maxWait: Int) {
        self.ttl = ttl
        self.maxWait = UInt64(max(maxWait, 0))
    }

    init(loop: UnsafeMutablePointer<uv_loop_t>, cache: SharedCache, ttl: Int, maxWait: Int) {
        self.loop = loop
        self.cache = cache
        self.ttl = ttl
        self.maxWait = UInt64(max(maxWait, 0))
        let me = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_init(loop, renewTimer)
        renewTimer.pointee.data = me
        uv_timer_init(loop, pollTimer)
        pollTimer.pointee.data = me
        let renew = UInt64(max(ttl / 3, 1))
        uv_timer_start(renewTimer, onRenewTimer, renew, renew)
        uv_unref(etag_uv_handle(renewTimer))
    }

    deinit {
        // Freed only once the loop has run the close callbacks (the worker drops its leases after that).
        renewTimer.deallocate()
        pollTimer.deallocate()
    }

    private var now: UInt64 { uv_now(loop) }

    func acquire(_ resource: Digest20, for waiter: any LeaseWaiter) -> Bool {
        let stripe = cache.leaseStripe(uri: resource)
        var queue = queues[stripe] ?? Queue()
        if held[stripe] == nil && queue.waiters.isEmpty,
            let word = cache.tryAcquireLease(stripe: stripe, ttlMs: ttl, pid: pid)
        {
            held[stripe] = word
            return true
        }
        let first = queue.waiters.isEmpty
        queue.waiters.append(Waiter(waiter: waiter, since: now))
        // Held by another worker or process: the head polls. Held here: the release wakes it.
        if first && held[stripe] == nil {
            queue.nextPoll = now + 1
            queue.backoff = 1
        } else if first {
            queue.nextPoll = 0
        }
        queues[stripe] = queue
        schedulePoll(queue.nextPoll)
        schedulePoll(now + maxWait + 1)  // every waiter hears by its deadline
        return false
    }

    func release(_ resource: Digest20, letExpire: Bool) {
        let stripe = cache.leaseStripe(uri: resource)
        if let word = held.removeValue(forKey: stripe), !letExpire { cache.releaseLease(stripe: stripe, word: word) }
        wake(stripe)
    }

    func stopWaiting(_ waiter: any LeaseWaiter, for resource: Digest20) {
        let stripe = cache.leaseStripe(uri: resource)
        guard var queue = queues[stripe] else { return }
        let wasHead = queue.waiters.first?.waiter === waiter
        queue.waiters.removeAll { $0.waiter === waiter }
        queues[stripe] = queue.waiters.isEmpty ? nil : queue
        if wasHead { wake(stripe) }
    }

    func close() {
        guard !closed else { return }
        closed = true
        queues = [:]
        uv_close(etag_uv_handle(renewTimer), nil)
        uv_close(etag_uv_handle(pollTimer), nil)
    }

    /// The next writer in line tries on the next loop turn (never inside the releasing exchange's call).
    private func wake(_ stripe: Int) {
        guard var queue = queues[stripe], !queue.waiters.isEmpty else { return }
        queue.nextPoll = now + 1
        queue.backoff = 1
        queues[stripe] = queue
        schedulePoll(queue.nextPoll)
    }

    private func schedulePoll(_ at: UInt64) {
        guard at > 0, !closed else { return }
        if pollScheduled == 0 || at < pollScheduled {
            pollScheduled = at
            uv_timer_start(pollTimer, onPollTimer, at > now ? at - now : 0, 0)
        }
    }

    /// Due heads try the lease word; waiters past `lease_wait` are told so. Callbacks run after the tables are
    /// updated: a waiter's reaction may call back into this type.
    fileprivate func poll() {
        pollScheduled = 0
        let t = now
        var granted: [any LeaseWaiter] = []
        var expired: [any LeaseWaiter] = []
        var next: UInt64 = 0
        for stripe in Array(queues.keys) {
            guard var queue = queues[stripe] else { continue }
            if held[stripe] == nil, queue.nextPoll != 0, queue.nextPoll <= t, let head = queue.waiters.first {
                if let word = cache.tryAcquireLease(stripe: stripe, ttlMs: ttl, pid: pid) {
                    held[stripe] = word
                    queue.waiters.removeFirst()
                    granted.append(head.waiter)
                    queue.nextPoll = 0
                } else {
                    queue.backoff = min(queue.backoff * 2, 50)
                    queue.nextPoll = t + queue.backoff
                }
            }
            let late = queue.waiters.filter { t - $0.since > maxWait }
            if !late.isEmpty {
                queue.waiters.removeAll { t - $0.since > maxWait }
                expired += late.map(\.waiter)
                if held[stripe] == nil, !queue.waiters.isEmpty, queue.nextPoll == 0 { queue.nextPoll = t + 1 }
            }
            if queue.waiters.isEmpty {
                queues.removeValue(forKey: stripe)
                continue
            }
            queues[stripe] = queue
            if queue.nextPoll != 0 { next = next == 0 ? queue.nextPoll : min(next, queue.nextPoll) }
            let deadline = queue.waiters.map(\.since).min()! + maxWait + 1
            next = next == 0 ? deadline : min(next, deadline)
        }
        schedulePoll(next)
        for w in granted { w.leaseGranted() }
        for w in expired { w.leaseWaitExpired() }
    }

    fileprivate func renew() {
        for (stripe, word) in held {
            if let renewed = cache.renewLease(stripe: stripe, word: word, ttlMs: ttl, pid: pid) {
                held[stripe] = renewed
            }
        }
    }
}

private func onRenewTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<SharedMemoryLeases>.fromOpaque(h!.pointee.data).takeUnretainedValue().renew()
}

private func onPollTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<SharedMemoryLeases>.fromOpaque(h!.pointee.data).takeUnretainedValue().poll()
}

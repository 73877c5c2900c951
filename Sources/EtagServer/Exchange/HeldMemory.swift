internal import CEtagShim
import EtagCache
import Synchronization

/// The process-wide budget for response bytes in memory (`limits.held_memory`): bodies held whole to be tagged,
/// and answers queued for clients that read slowly. Past it, a body being held is sent on untagged, as one past
/// `etag.max_body` is (its bytes then stream through `limits.buffer_size` per connection), so slow readers can
/// pin at most the budget plus a buffer each — not connections × `etag.max_body`.
///
/// Shared by every worker thread; each takes credit from it in blocks (`HeldMemoryCredit`), so an exchange
/// touches no shared word unless its worker's credit runs out.
final class HeldMemoryBudget: Sendable {
    /// Credit moves between the budget and a worker in blocks of this many bytes.
    static let block = 1 << 20
    private let limitBytes: Atomic<Int>
    private let used = Atomic<Int>(0)
    /// The most bytes in use since memory was last handed back to the system (`trimIfShrunk`).
    private let highWater = Atomic<Int>(0)
    private let lastTrimNs = Atomic<UInt64>(0)

    init(limit: Int) { limitBytes = Atomic(limit) }

    var limit: Int {
        get { limitBytes.load(ordering: .relaxed) }
        set { limitBytes.store(newValue, ordering: .relaxed) }
    }

    /// Bytes reserved by the workers (their unused credit included).
    var inUse: Int { used.load(ordering: .relaxed) }

    /// Reserves `n` bytes if they fit under the limit.
    func reserve(_ n: Int) -> Bool {
        var cur = used.load(ordering: .relaxed)
        while true {
            guard cur + n <= limit else { return false }
            let (done, now) = used.compareExchange(
                expected: cur, desired: cur + n, ordering: .relaxed)
            if done {
                noteHigh(cur + n)
                return true
            }
            cur = now
        }
    }

    /// Reserves `n` bytes that are in memory already (queued for a client), past the limit if need be.
    func force(_ n: Int) {
        let (_, now) = used.wrappingAdd(n, ordering: .relaxed)
        noteHigh(now)
    }

    func release(_ n: Int) {
        used.wrappingSubtract(n, ordering: .relaxed)
    }

    private func noteHigh(_ v: Int) {
        var h = highWater.load(ordering: .relaxed)
        while v > h {
            let (done, now) = highWater.compareExchange(expected: h, desired: v, ordering: .relaxed)
            if done { break }
            h = now
        }
    }

    /// After a flood of slow readers has gone: when the bytes in use fell below a quarter of a high-water mark of
    /// at least 16 MiB, hands the freed heap back to the system (glibc keeps freed memory of large bodies in its
    /// arenas otherwise). At most once a second, by whichever worker sees it first.
    func trimIfShrunk(nowNs: UInt64) {
        let high = highWater.load(ordering: .relaxed)
        guard high >= 16 << 20, inUse < high / 4 else { return }
        let last = lastTrimNs.load(ordering: .relaxed)
        guard nowNs &- last > 1_000_000_000,
            lastTrimNs.compareExchange(expected: last, desired: nowNs, ordering: .relaxed).exchanged
        else { return }
        highWater.store(inUse, ordering: .relaxed)
        etag_malloc_trim()
    }
}

/// One worker's share of the budget: credit reserved from it and not in use yet (what is in use is counted by the
/// budget). Worker thread only.
final class HeldMemoryCredit {
    let budget: HeldMemoryBudget
    /// Reserved from the budget and not in use.
    private var credit = 0

    init(budget: HeldMemoryBudget) { self.budget = budget }

    /// Takes `n` bytes for a held body; false when the budget has no room (the body goes on untagged).
    func take(_ n: Int) -> Bool {
        if credit < n {
            let need = n - credit
            let block = max(need, HeldMemoryBudget.block)
            if budget.reserve(block) {
                credit += block
            } else if budget.reserve(need) {
                credit += need
            } else {
                return false
            }
        }
        credit -= n
        return true
    }

    /// Counts `n` bytes already in memory (a client write libuv queued), past the budget if need be.
    func force(_ n: Int) {
        if credit >= n {
            credit -= n
        } else {
            budget.force(n - credit)
            credit = 0
        }
    }

    /// Gives back `n` bytes no longer held; credit beyond two blocks goes back to the budget.
    func give(_ n: Int) {
        credit += n
        if credit > 2 * HeldMemoryBudget.block {
            budget.release(credit - HeldMemoryBudget.block)
            credit = HeldMemoryBudget.block
            budget.trimIfShrunk(nowNs: SharedCache.now)
        }
    }
}

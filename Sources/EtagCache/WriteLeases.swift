internal import CEtagShm
import EtagCore

/// Write leases in the shared region: one 64-bit word per stripe of resources, taken by compare-and-swap.
/// A word holds the owner's pid (22 bits, for diagnostics) and a deadline in monotonic milliseconds (42 bits);
/// 0 is free. The owner renews the deadline while it holds the lease; a lease whose deadline has passed (its
/// owner died, or hung) may be taken over. Nothing ever blocks: a busy lease is reported, and the caller waits
/// on its own event loop.
extension SharedCache {
    /// The lease stripe of a resource (its URI digest).
    public func leaseStripe(uri: Digest20) -> Int { Int(UInt64(uri.c) &* 0x9E37_79B9 % UInt64(leaseCount)) }

    static var nowMs: UInt64 { etag_now_ns() / 1_000_000 }

    static func word(pid: Int32, deadlineMs: UInt64) -> UInt64 {
        (UInt64(UInt32(bitPattern: pid) & 0x3F_FFFF) << 42) | (deadlineMs & 0x3FF_FFFF_FFFF)
    }

    static func deadline(of word: UInt64) -> UInt64 { word & 0x3FF_FFFF_FFFF }

    /// Takes the lease of `stripe` for `ttlMs` if it is free or expired. Returns the word that now holds it.
    public func tryAcquireLease(stripe: Int, ttlMs: Int, pid: Int32) -> UInt64? {
        let p = leasePointer(stripe)
        let now = Self.nowMs
        let current = etag_load64(p)
        guard current == 0 || Self.deadline(of: current) <= now else { return nil }
        let mine = Self.word(pid: pid, deadlineMs: now + UInt64(max(ttlMs, 1)))
        return etag_cas64(p, current, mine) != 0 ? mine : nil
    }

    /// Extends a held lease. Returns the new word, or nil if the lease is no longer ours.
    public func renewLease(stripe: Int, word: UInt64, ttlMs: Int, pid: Int32) -> UInt64? {
        let renewed = Self.word(pid: pid, deadlineMs: Self.nowMs + UInt64(max(ttlMs, 1)))
        return etag_cas64(leasePointer(stripe), word, renewed) != 0 ? renewed : nil
    }

    /// Frees a held lease (no effect if it was taken over after expiring).
    public func releaseLease(stripe: Int, word: UInt64) {
        _ = etag_cas64(leasePointer(stripe), word, 0)
    }

    /// The word currently in a stripe (tests, diagnostics).
    public func leaseWord(stripe: Int) -> UInt64 { etag_load64(leasePointer(stripe)) }
}

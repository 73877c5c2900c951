import EtagCore
import Foundation
import Testing
@testable import EtagCache

@Suite("Write leases in shared memory: compare-and-swap, expiry, renewal")
struct WriteLeaseTests {
    @Test func oneOwnerAtATimeUntilReleased() throws {
        let name = SharedCacheTests.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let a = try SharedCache(name: name, size: 1 << 20)
        let b = try SharedCache(name: name, size: 1 << 20)  // another mapping, as another process has
        let stripe = a.leaseStripe(uri: Digest20(a: 1, b: 2, c: 3))
        let held = try #require(a.tryAcquireLease(stripe: stripe, ttlMs: 5000, pid: 100))
        #expect(b.tryAcquireLease(stripe: stripe, ttlMs: 5000, pid: 200) == nil, "busy for everyone else")
        #expect(b.leaseWord(stripe: stripe) == held)
        a.releaseLease(stripe: stripe, word: held)
        #expect(b.leaseWord(stripe: stripe) == 0)
        #expect(b.tryAcquireLease(stripe: stripe, ttlMs: 5000, pid: 200) != nil)
    }

    @Test func anExpiredLeaseCanBeTakenOverAndARenewedOneCannot() throws {
        let name = SharedCacheTests.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let held = try #require(c.tryAcquireLease(stripe: 7, ttlMs: 50, pid: 100))
        let renewed = try #require(c.renewLease(stripe: 7, word: held, ttlMs: 300, pid: 100))
        Thread.sleep(forTimeInterval: 0.1)
        #expect(c.tryAcquireLease(stripe: 7, ttlMs: 50, pid: 200) == nil, "renewed: still held")
        Thread.sleep(forTimeInterval: 0.3)
        let taken = try #require(c.tryAcquireLease(stripe: 7, ttlMs: 50, pid: 200), "expired: taken over")
        // The old owner's release and renewal no longer touch the lease.
        c.releaseLease(stripe: 7, word: renewed)
        #expect(c.leaseWord(stripe: 7) == taken)
        #expect(c.renewLease(stripe: 7, word: renewed, ttlMs: 50, pid: 100) == nil)
    }
}

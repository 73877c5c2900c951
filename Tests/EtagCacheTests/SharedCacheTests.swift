import EtagCore
import Foundation
import Testing
@testable import EtagCache

@Suite("Shared-memory table: store, lookup, eviction, invalidation, region rebuild")
struct SharedCacheTests {
    static func uniqueName() -> String { "/etag-proxy-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    func digest(_ s: String) -> Digest20 { SHA1Hasher().hash(Array(s.utf8)) }

    @Test func storeThenLookupInAnotherMapping() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let a = try SharedCache(name: name, size: 1 << 20)
        #expect(a.created)
        let now = SharedCache.now
        let e = CacheEntry(
            etag: digest("body"), generation: 0, storedNs: now, expiresNs: now + 1_000_000_000,
            fieldsDigest: 0x1234_5678_9abc_def1)
        #expect(a.store(key: digest("k"), entry: e) == .stored)
        let b = try SharedCache(name: name, size: 1 << 20)
        #expect(!b.created, "a second open finds the region")
        #expect(b.lookup(key: digest("k")) == e)
        #expect(b.lookup(key: digest("other")) == nil)
    }

    @Test func overwriteKeepsOneEntryPerKey() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let now = SharedCache.now
        for i in 0..<20 {
            c.store(
                key: digest("k"),
                entry: CacheEntry(etag: digest("v\(i)"), generation: 0, storedNs: now, expiresNs: now + 1))
        }
        #expect(c.lookup(key: digest("k"))?.etag == digest("v19"))
    }

    @Test func aFullTableEvictsForAKeyAskedForMoreOften() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let now = SharedCache.now
        func entry(_ i: Int) -> CacheEntry {
            CacheEntry(etag: digest("\(i)"), generation: 0, storedNs: now, expiresNs: now + 60_000_000_000)
        }
        var results: [CacheStoreResult] = []
        for i in 0..<(c.slotCount * 2) { results.append(c.store(key: digest("key\(i)"), entry: entry(i))) }
        #expect(results.filter { $0 == .stored }.count >= c.slotCount * 3 / 4, "free slots fill first")
        #expect(results.filter { $0 == .refused }.count >= c.slotCount / 2, "one-off keys do not evict one-off keys")
        // A key asked for twice is admitted over entries asked for once.
        let hot = digest("asked-twice")
        _ = c.store(key: hot, entry: entry(-1))
        let second = c.store(key: hot, entry: entry(-1))
        #expect(second == .evicted || second == .stored)
        #expect(c.lookup(key: hot) != nil, "the key asked for twice is present")
    }

    /// Issue #10 item 7: a scan of one-off URLs worth ten times the slots leaves the hot entries in place.
    @Test func aScanOfTenTimesTheSlotsLeavesTheHotEntries() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let now = SharedCache.now
        let e = CacheEntry(etag: digest("v"), generation: 0, storedNs: now, expiresNs: now + 600_000_000_000)
        let hot = (0..<(c.slotCount / 4)).map { digest("hot\($0)") }
        // The hot set: stored on a miss, then asked for again and again (hits).
        for k in hot {
            if c.lookup(key: k) == nil { c.store(key: k, entry: e) }
        }
        for _ in 0..<1 { for k in hot { _ = c.lookup(key: k) } }
        // The scan: every URL once (a miss, then a store), while the hot set keeps being asked for.
        var hotTurn = 0
        for i in 0..<(c.slotCount * 10) {
            let k = digest("scan\(i)")
            if c.lookup(key: k) == nil { c.store(key: k, entry: e) }
            if i % 8 == 0 {
                let h = hot[hotTurn % hot.count]
                hotTurn += 1
                if c.lookup(key: h) == nil { c.store(key: h, entry: e) }
            }
        }
        let survivors = hot.filter { c.lookup(key: $0) != nil }.count
        print("scan of \(c.slotCount * 10) one-off keys: \(survivors) of \(hot.count) hot entries survived")
        #expect(
            survivors * 100 >= hot.count * 90, "\(survivors) of \(hot.count) hot entries survived the scan")
    }

    @Test func varyMarkersKeepTheirNames() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let e = CacheEntry(
            etag: digest("x"), mustRevalidate: true, varyNames: "x-tenant,x-region", generation: 3, storedNs: 1,
            expiresNs: 2)
        c.store(key: digest("m"), entry: e)
        #expect(c.lookup(key: digest("m")) == e)
    }

    @Test func invalidationBumpsTheGenerationForEveryMapping() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let a = try SharedCache(name: name, size: 1 << 20)
        let b = try SharedCache(name: name, size: 1 << 20)
        let uri = digest("/persons")
        let g = a.generation(uri: uri)
        b.invalidate(uri: uri)
        #expect(a.generation(uri: uri) == g &+ 1)
    }

    @Test func aRegionWithAWrongHeaderIsRebuilt() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        // Write garbage into a region of the right size under the name.
        let fd = shm_open(name, O_RDWR | O_CREAT, 0o600)
        #expect(fd >= 0)
        #expect(ftruncate(fd, 1 << 20) == 0)
        let garbage = [UInt8](repeating: 0xAB, count: 4096)
        _ = garbage.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let c = try SharedCache(name: name, size: 1 << 20)
        #expect(c.created, "the untrusted region was made anew")
        #expect(c.lookup(key: digest("k")) == nil)
        // A region of another size is rebuilt as well.
        let d = try SharedCache(name: name, size: 2 << 20)
        #expect(d.created)
    }

    @Test func aWriterThatDiedMidCopyBlocksNobodyForLong() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let key = digest("k")
        let now = SharedCache.now
        let e = CacheEntry(etag: digest("v"), generation: 0, storedNs: now, expiresNs: now + 60_000_000_000)
        // Just now: a live writer may still be copying — readers see a miss, writers back off.
        c.simulateInterruptedWrites(key: key, startedNs: now)
        #expect(c.lookup(key: key) == nil)
        #expect(c.store(key: key, entry: e) == .busy)
        // Two seconds ago: its writer is gone; the next writer takes the slot over.
        c.simulateInterruptedWrites(key: key, startedNs: now - 2_000_000_000)
        #expect(c.store(key: key, entry: e) != .busy)
        #expect(c.lookup(key: key) == e)
    }

    /// Issue #10 item 6: a slot whose content fails its check is a miss, whichever byte a stray write changed.
    @Test(arguments: [0, 19, 20, 39, 40, 44, 48, 56, 64, 72, 100, 119, 120])
    func aCorruptSlotIsAMissAndIsReused(byte: Int) throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let key = digest("k")
        let now = SharedCache.now
        let e = CacheEntry(
            etag: digest("v"), varyNames: "x-a", generation: 7, storedNs: now, expiresNs: now + 60_000_000_000,
            fieldsDigest: 5)
        c.store(key: key, entry: e)
        #expect(c.lookup(key: key) == e)
        c.simulateCorruption(key: key, byte: byte)
        #expect(c.lookup(key: key) == nil, "byte \(byte) changed: never trusted")
        #expect(c.liveEntries() == 0)
        #expect(c.store(key: key, entry: e) == .stored, "the corrupt slot is overwritten, not evicted around")
        #expect(c.lookup(key: key) == e)
    }

    @Test func regionIsPrivateToTheUser() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        _ = try SharedCache(name: name, size: 1 << 20)
        let attrs = try FileManager.default.attributesOfItem(atPath: "/dev/shm" + name)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
    }

    @Test func concurrentWritersAndReadersNeverSeeTornEntries() throws {
        let name = Self.uniqueName()
        defer { SharedCache.unlink(name: name) }
        let c = try SharedCache(name: name, size: 1 << 20)
        let key = digest("hot")
        let tags = (0..<4).map { digest("tag\($0)") }
        let stop = DispatchTime.now() + .milliseconds(300)
        let group = DispatchGroup()
        let torn = ManagedAtomicFlag()
        for w in 0..<2 {
            DispatchQueue.global().async(group: group) {
                var i = 0
                while DispatchTime.now() < stop {
                    // The generation always equals the tag index: a torn read would mix them.
                    let t = (i + w) % 4
                    c.store(
                        key: key,
                        entry: CacheEntry(
                            etag: tags[t], generation: UInt32(t), storedNs: UInt64(t), expiresNs: UInt64(t)))
                    i += 1
                }
            }
        }
        DispatchQueue.global().async(group: group) {
            while DispatchTime.now() < stop {
                if let e = c.lookup(key: key) {
                    let t = Int(e.generation)
                    if t > 3 || e.etag != tags[t] || e.storedNs != UInt64(t) { torn.set() }
                }
            }
        }
        group.wait()
        #expect(!torn.isSet)
    }

    /// A region another user made, or one others may read or write, is refused — never mapped and used.
    @Test func aForeignRegionIsRefused() throws {
        let size = 1024 * 1024
        for variant in ["mode 0666", "another owner"] {
            let name = Self.uniqueName()
            defer { SharedCache.unlink(name: name) }
            // Made in advance as a hostile neighbour would: a well-formed region, left open to others.
            _ = try SharedCache(name: name, size: size)
            let path = "/dev/shm" + name
            if variant == "mode 0666" {
                #expect(chmod(path, 0o666) == 0)
            } else {
                guard geteuid() == 0 else { continue }  // only root can give a file away
                #expect(chown(path, 65534, 65534) == 0)
            }
            #expect(throws: SharedCacheError.self, "\(variant)") { _ = try SharedCache(name: name, size: size) }
            do {
                _ = try SharedCache(name: name, size: size)
            } catch let e as SharedCacheError {
                #expect(e.description.contains("refused"), "\(e)")
            }
        }
    }
}

final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

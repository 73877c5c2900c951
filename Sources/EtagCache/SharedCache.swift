internal import CEtagShm
import EtagCore

/// What the shared cache knows of one representation: its ETag and freshness, never its body or a header value.
public struct CacheEntry: Sendable, Equatable {
    public var etag: Digest20
    /// no-cache / private: the entry may validate a 200 but never answers a 304 without the upstream.
    public var mustRevalidate: Bool
    /// Extra Vary field names (lowercase, comma-separated) when this is a Vary marker entry.
    public var varyNames: String?
    /// The URI generation when the response was fetched.
    public var generation: UInt32
    public var storedNs: UInt64
    public var expiresNs: UInt64
    /// A digest of the fields a 304 must repeat from the 200 (Cache-Control, Content-Location, Expires, Vary);
    /// 0 when the 200 had none. The values themselves stay in process memory (`NotModifiedFieldsMemo`): a
    /// process that does not know them cannot answer this entry's 304 without the upstream.
    public var fieldsDigest: UInt64

    public init(
        etag: Digest20, mustRevalidate: Bool = false, varyNames: String? = nil, generation: UInt32,
        storedNs: UInt64, expiresNs: UInt64, fieldsDigest: UInt64 = 0
    ) {
        self.etag = etag
        self.mustRevalidate = mustRevalidate
        self.varyNames = varyNames
        self.generation = generation
        self.storedNs = storedNs
        self.expiresNs = expiresNs
        self.fieldsDigest = fieldsDigest
    }

    public func isFresh(now: UInt64) -> Bool { now < expiresNs }
}

/// What `SharedCache.store` did.
public enum CacheStoreResult: Sendable, Equatable {
    /// Into a free or expired slot, or over the key's own entry.
    case stored
    /// In place of a live entry of another key.
    case evicted
    /// Not stored: the key has been asked for less often lately than the entry it would evict (the admission
    /// filter that keeps a scan of one-off URLs from flushing the hot entries).
    case refused
    /// Not stored: another writer holds the slot.
    case busy
}

public enum SharedCacheError: Error, CustomStringConvertible, Equatable {
    case open(String, Int32)
    /// The region exists but is not this user's with mode 0600: never used.
    case foreign(String, owner: UInt32, mode: UInt32)
    public var description: String {
        switch self {
        case .open(let n, let e): return "cannot open the shared-memory cache region \(n): errno \(-e)"
        case .foreign(let n, let owner, let mode):
            return "the shared-memory region \(n) belongs to uid \(owner) with mode \(String(mode, radix: 8)), "
                + "not to this user with mode 600: refused (remove /dev/shm\(n) or set cache.name)"
        }
    }
}

/// The shared-memory table: a fixed number of 8-slot buckets of seqlocked slots, plus URI generation counters
/// used for invalidation. Shared by every worker thread and every process that opens the same name.
///
/// Readers never block (a slot being written reads as a miss, and so does one whose content fails its check);
/// writers take one slot's seqlock by compare-and-swap and never hold it across anything but a 128-byte copy; a
/// writer that died mid-copy is taken over after a second. No global lock. Safe to call from any thread.
public final class SharedCache: @unchecked Sendable {
    public let name: String
    public let size: Int
    /// Whether this process built the region (false: it found one and trusted its header).
    public let created: Bool
    private let base: UnsafeMutableRawPointer
    private let slots: UnsafeMutablePointer<etag_slot>
    private let gens: UnsafeMutablePointer<UInt32>
    private let leases: UnsafeMutablePointer<UInt64>
    /// The region's epoch word (`etag_region_header.epoch`).
    private let epoch: UnsafeMutablePointer<UInt32>
    public let leaseCount: Int
    public let slotCount: Int
    private let buckets: UInt64
    private let genCount: UInt64
    /// The admission filter's pointers into the region (allocated once, freed in deinit; read-only after init).
    private let filter: UnsafeMutablePointer<etag_filter>
    static let staleWriterNs: UInt64 = 1_000_000_000

    /// Opens or creates the region `name` ("/etag-proxy-…") of `size` bytes, mode 0600.
    public init(name: String, size: Int) throws {
        var b: UnsafeMutableRawPointer? = nil
        var created: Int32 = 0
        var owner: UInt32 = 0
        var mode: UInt32 = 0
        let rc = etag_region_open(name, UInt64(size), &b, &created, &owner, &mode)
        if rc == ETAG_REGION_FOREIGN { throw SharedCacheError.foreign(name, owner: owner, mode: mode) }
        guard rc == 0, let b else { throw SharedCacheError.open(name, rc) }
        self.name = name
        self.size = size
        self.created = created != 0
        base = b
        let h = b.assumingMemoryBound(to: etag_region_header.self).pointee
        slots = (b + Int(h.slots_offset)).assumingMemoryBound(to: etag_slot.self)
        gens = (b + Int(h.gens_offset)).assumingMemoryBound(to: UInt32.self)
        leases = (b + Int(h.leases_offset)).assumingMemoryBound(to: UInt64.self)
        epoch = (b + MemoryLayout<etag_region_header>.offset(of: \etag_region_header.epoch)!)
            .assumingMemoryBound(to: UInt32.self)
        leaseCount = Int(h.lease_count)
        slotCount = Int(h.slot_count)
        buckets = UInt64(h.slot_count) / UInt64(ETAG_BUCKET_SLOTS)
        genCount = UInt64(h.gen_count)
        filter = .allocate(capacity: 1)
        filter.initialize(
            to: etag_filter(
                sketch: (b + Int(h.sketch_offset)).assumingMemoryBound(to: UInt8.self),
                door: (b + Int(h.door_offset)).assumingMemoryBound(to: UInt64.self),
                ops: (b + Int(ETAG_SKETCH_OPS_OFFSET)).assumingMemoryBound(to: UInt64.self),
                sample: 10 * UInt64(h.slot_count),  // TinyLFU's sample: ten asks per slot
                sketch_bits: h.sketch_bits, door_bits: h.door_bits))
    }

    /// The sketch's hash of a key (its digest's bits are uniform; `a` also picks the bucket, so mix in `b`).
    @inline(__always) private static func sketchHash(_ key: Digest20) -> UInt64 { key.b ^ (key.a >> 17) }

    /// How often `key` was asked for lately (0…16), as the admission filter sees it.
    public func frequency(key: Digest20) -> UInt32 {
        etag_filter_estimate(filter, Self.sketchHash(key))
    }

    deinit {
        filter.deallocate()
        etag_region_close(base, UInt64(size))
    }

    /// Removes the region's name (processes that have it mapped keep using their mapping).
    public static func unlink(name: String) { _ = etag_region_unlink(name) }

    /// Monotonic nanoseconds, comparable across processes.
    public static var now: UInt64 { etag_now_ns() }

    /// A lease word (16 bytes apart, so two stripes never share a word).
    func leasePointer(_ stripe: Int) -> UnsafeMutablePointer<UInt64> { leases + 2 * stripe }

    // MARK: generations (invalidation)

    private func genPointer(_ uri: Digest20) -> UnsafeMutablePointer<UInt32> {
        gens + Int(uri.b % genCount)
    }

    /// The current generation of a URI (path without query, see `CacheKey`): its own count plus the region's
    /// epoch.
    public func generation(uri: Digest20) -> UInt32 { etag_load32(genPointer(uri)) &+ etag_load32(epoch) }

    /// Every stored entry of every URI is stale from now on, for every worker and process (a fleet replica that
    /// may have missed invalidations while its subscription was down).
    public func invalidateAll() { _ = etag_add32(epoch, 1) }

    /// Invalidates every stored variant of a URI for every worker and process (RFC 9111 §4.4).
    public func invalidate(uri: Digest20) { _ = etag_add32(genPointer(uri), 1) }

    // MARK: entries

    /// The entry stored under `key`, if any (stale ones included; the caller judges freshness).
    public func lookup(key: Digest20) -> CacheEntry? {
        let start = Int(key.a % buckets) * Int(ETAG_BUCKET_SLOTS)
        var p = etag_payload()
        for i in 0..<Int(ETAG_BUCKET_SLOTS) {
            let slot = slots + start + i
            guard etag_slot_read(slot, &p) == 1, p.flags & ETAG_SLOT_USED != 0, Self.keyOf(p) == key else { continue }
            if etag_slot_referenced(slot) == 0 { etag_slot_set_referenced(slot, 1) }
            etag_filter_touch(filter, Self.sketchHash(key), 0)  // a hit: not counted toward aging
            return Self.entry(p)
        }
        return nil
    }

    /// Stores `entry` under `key` (each store is one more ask for the key: the fetch it follows was a miss or a
    /// revalidation). A full bucket evicts the first entry the clock passes over, unless the admission filter
    /// refuses: TinyLFU admits a key only when it was asked for more often lately than that entry.
    @discardableResult
    public func store(key: Digest20, entry: CacheEntry) -> CacheStoreResult {
        let start = Int(key.a % buckets) * Int(ETAG_BUCKET_SLOTS)
        let now = Self.now
        etag_filter_touch(filter, Self.sketchHash(key), 1)
        var p = etag_payload()
        var victim: Int? = nil
        var evicts = false
        var firstFree: Int? = nil
        for i in 0..<Int(ETAG_BUCKET_SLOTS) {
            let read = etag_slot_read(slots + start + i, &p)
            let ok = read == 1
            if ok && p.flags & ETAG_SLOT_USED != 0 && Self.keyOf(p) == key {
                victim = i
                break
            }
            // A corrupt slot is as good as free: nothing in it is trusted.
            let free = read == ETAG_SLOT_CORRUPT || (ok && (p.flags & ETAG_SLOT_USED == 0 || p.expires_ns <= now))
            if firstFree == nil && free { firstFree = i }
        }
        if victim == nil { victim = firstFree }
        if victim == nil {
            // Clock (second chance): the first slot not referenced since the hand last passed.
            let hand = Int(key.b % UInt64(ETAG_BUCKET_SLOTS))
            for k in 0..<Int(ETAG_BUCKET_SLOTS) {
                let i = (hand + k) % Int(ETAG_BUCKET_SLOTS)
                let slot = slots + start + i
                if etag_slot_referenced(slot) == 0 {
                    victim = i
                    break
                }
                etag_slot_set_referenced(slot, 0)
            }
            victim = victim ?? hand
            evicts = true
            if etag_slot_read(slots + start + victim!, &p) == 1,
                frequency(key: key) <= frequency(key: Self.keyOf(p))
            {
                return .refused
            }
        }
        var out = Self.payload(key, entry)
        let slot = slots + start + victim!
        guard etag_slot_write(slot, &out, Self.staleWriterNs) != 0 else { return .busy }
        etag_slot_set_referenced(slot, 0)
        return evicts ? .evicted : .stored
    }

    /// Slots holding a live (unexpired) entry: one pass over the table with seqlock reads, for a metrics scrape.
    public func liveEntries() -> Int {
        let now = Self.now
        var p = etag_payload()
        var n = 0
        for i in 0..<slotCount where etag_slot_read(slots + i, &p) == 1 {
            if p.flags & ETAG_SLOT_USED != 0 && p.expires_ns > now { n += 1 }
        }
        return n
    }

    /// Marks every slot of `key`'s bucket as being written since `startedNs` — what a writer killed in the middle
    /// of its copy leaves behind. For tests.
    func simulateInterruptedWrites(key: Digest20, startedNs: UInt64) {
        let start = Int(key.a % buckets) * Int(ETAG_BUCKET_SLOTS)
        for i in 0..<Int(ETAG_BUCKET_SLOTS) {
            etag_slot_set_seq(slots + start + i, startedNs | 1)
        }
    }

    /// Flips one bit of every slot in `key`'s bucket behind the seqlock's back, at `byte` of the payload: what a
    /// stray write into the region does. For tests.
    func simulateCorruption(key: Digest20, byte: Int) {
        let start = Int(key.a % buckets) * Int(ETAG_BUCKET_SLOTS)
        for i in 0..<Int(ETAG_BUCKET_SLOTS) { etag_slot_flip_bit(slots + start + i, byte) }
    }

    // MARK: payload conversion

    private static func keyOf(_ p: etag_payload) -> Digest20 {
        withUnsafeBytes(of: p.key) { Digest20($0) }
    }

    private static func entry(_ p: etag_payload) -> CacheEntry {
        let etag = withUnsafeBytes(of: p.etag) { Digest20($0) }
        var vary: String? = nil
        if p.flags & ETAG_SLOT_VARY != 0 {
            vary = withUnsafeBytes(of: p.vary) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return CacheEntry(
            etag: etag, mustRevalidate: p.flags & ETAG_SLOT_REVALIDATE != 0, varyNames: vary,
            generation: p.gen, storedNs: p.stored_ns, expiresNs: p.expires_ns,
            fieldsDigest: p.fields)
    }

    private static func payload(_ key: Digest20, _ e: CacheEntry) -> etag_payload {
        var p = etag_payload()
        withUnsafeMutableBytes(of: &p.key) { dst in
            withUnsafeBytes(of: key) { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        }
        withUnsafeMutableBytes(of: &p.etag) { dst in
            withUnsafeBytes(of: e.etag) { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        }
        var flags = ETAG_SLOT_USED
        if e.mustRevalidate { flags |= ETAG_SLOT_REVALIDATE }
        if let v = e.varyNames {
            flags |= ETAG_SLOT_VARY
            let bytes = Array(v.utf8.prefix(Int(ETAG_VARY_NAMES) - 1))
            withUnsafeMutableBytes(of: &p.vary) { $0.copyBytes(from: bytes) }
        }
        p.flags = flags
        p.gen = e.generation
        p.stored_ns = e.storedNs
        p.expires_ns = e.expiresNs
        p.fields = e.fieldsDigest
        return p
    }
}

import EtagCore

/// A response body held whole before its head goes out (its ETag goes in the head), hashed as it arrives when
/// it has a hasher. Owned by the exchange that asked for it, filled by its upstream connection; worker thread
/// only. The hasher is the worker's (see `Worker.takeHasher`): whoever ends the exchange returns it.
final class HeldBody {
    /// Unchecked exclusivity: appended to and read only by the owning exchange's calls on the worker thread, never
    /// passed `inout` across a callback, so no two accesses can overlap (and a dynamic check on each append costs
    /// ~200 instructions per response).
    @exclusivity(unchecked) private(set) var bytes: [UInt8]
    /// The most bytes held (`etag.max_body`).
    let limit: Int
    /// Fed every byte when the tag is the body's digest; nil when the tag comes from elsewhere or none is needed.
    private(set) var hasher: SHA1Hasher?
    /// The worker's share of `limits.held_memory`, charged as the body grows and given back when it goes.
    private let memory: HeldMemoryCredit
    private var charged = 0
    /// Up to this many bytes the body is counted but never refused: a relayed answer's first
    /// `limits.buffer_size` (no more than a streamed answer queues per connection, so a small body is always
    /// tagged), or all of a checked write's fetch (short-lived, and refusing it would fail the write).
    private let unrefused: Int

    init(limit: Int, expected: Int?, hasher: SHA1Hasher?, memory: HeldMemoryCredit, unrefused: Int) {
        self.limit = limit
        self.unrefused = unrefused
        self.hasher = hasher
        self.memory = memory
        var b: [UInt8] = []
        b.reserveCapacity(min(expected ?? 16 * 1024, limit))
        bytes = b
    }

    deinit { memory.give(charged) }

    /// Appends `data` (hashing it); false, with nothing appended, when the body would pass the limit or the
    /// process's `limits.held_memory`.
    func append(_ data: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count + data.count <= limit else { return false }
        if bytes.count + data.count <= unrefused {
            memory.force(data.count)
        } else if !memory.take(data.count) {
            return false
        }
        charged += data.count
        bytes.append(contentsOf: data)
        hasher?.update(data)
        return true
    }

    /// The digest of everything appended; the hasher is handed back with it (reset by `finish`).
    func finish() -> (Digest20, SHA1Hasher)? {
        guard let h = hasher else { return nil }
        hasher = nil
        return (h.finish(), h)
    }

    /// Gives up the hasher without a digest (it holds a partial one: the caller resets it).
    func takeHasher() -> SHA1Hasher? {
        defer { hasher = nil }
        return hasher
    }
}

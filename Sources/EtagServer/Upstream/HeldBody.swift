import EtagCore

/// A response body held whole before its head goes out (its ETag goes in the head), hashed as it arrives when
/// it has a hasher. Owned by the exchange that asked for it, filled by its upstream connection; worker thread
/// only. The hasher is the worker's (see `Worker.takeHasher`): whoever ends the exchange returns it.
final class HeldBody {
    /// The bytes so far; read whole by the exchange once the body is complete.
    let bytes: HeldBytes
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
        bytes = HeldBytes(capacity: min(expected ?? 16 * 1024, limit))
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
        bytes.append(data)
        hasher?.update(data)
        return true
    }

    /// Where the next read may go in place (see `HeldBytes`): at most `bodyLeft` bytes, the rest of a
    /// length-delimited body, and only when all of them fit within the limit (a body that will overflow is read
    /// the ordinary way, so nothing is lost when it turns into a stream).
    func readSpace(bodyLeft: Int) -> UnsafeMutableRawBufferPointer? {
        guard bodyLeft > 0, bytes.count + bodyLeft <= limit else { return nil }
        return bytes.space(limit: bodyLeft)
    }

    /// Whether a body of `bodyLength` bytes may take over a read buffer as its storage (`HeldBytes.adopt`):
    /// nothing held yet, and the whole body within the limit.
    func canAdopt(bodyLength: Int) -> Bool { bytes.count == 0 && bodyLength <= limit }

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

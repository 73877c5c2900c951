import Glibc

/// The bytes of a held response body: one `malloc`'d allocation, filled front to back, read-only once the body is
/// complete. Owned by the `HeldBody` that fills it, then by whatever answers with it (the exchange, the requests
/// collapsed into it, a checked write's re-fetch); worker thread only.
///
/// The body is copied by the kernel into this storage and by nothing else, where it can be:
/// - the read that brought the response head may be *adopted*: the worker's read buffer becomes this storage
///   (`adopt`), the body starting after the head, and the worker takes a new buffer;
/// - a later read may land straight in the free space (`space`) when every byte it can bring is body.
/// Either way `append` then finds the bytes already in place and only counts them.
final class HeldBytes {
    /// The allocation; the body is `base[start..<start + count]` (before `start`: the head of an adopted read).
    private var base: UnsafeMutableRawPointer?
    private var start = 0
    private(set) var count = 0
    private var allocated = 0
    /// Allocated on the first byte that is not read in place (an adopted buffer needs no allocation of its own).
    private var reserved: Int

    init(capacity: Int = 0) {
        reserved = capacity
    }

    deinit { free(base) }

    /// Room for the body as it stands: allocated, and not yet filled.
    var capacity: Int { allocated - start }

    /// Takes over `buffer` (allocated with `malloc`, `allocated` bytes), whose bytes from `bodyStart` on are the
    /// body's first bytes — they are appended next, in place. Only before anything is held. It is not grown now,
    /// though the body may need more room: the read in it is still being consumed. `space` grows it, before the
    /// next read, to `expected` bytes of body.
    func adopt(_ buffer: UnsafeMutableRawPointer, allocated n: Int, bodyStart: Int, expected: Int) {
        precondition(count == 0 && base == nil, "adopting a buffer into storage already in use")
        base = buffer
        allocated = n
        start = bodyStart
        reserved = expected
    }

    /// The free space after the bytes, at most `limit` bytes of it (never more than is allocated). Called between
    /// reads: it may move the storage.
    func space(limit: Int) -> UnsafeMutableRawBufferPointer? {
        if reserved > capacity { grow(to: reserved) }
        guard let b = base, capacity > count, limit > 0 else { return nil }
        return UnsafeMutableRawBufferPointer(start: b + start + count, count: min(capacity - count, limit))
    }

    /// Appends `data`; bytes already at the end (read in place, see `space` and `adopt`) are only counted.
    func append(_ data: UnsafeRawBufferPointer) {
        guard let from = data.baseAddress, data.count > 0 else { return }
        if let b = base, UnsafeRawPointer(b + start + count) == from {
            count += data.count  // read in place
            return
        }
        if count + data.count > capacity { grow(to: max(count + data.count, capacity * 2, reserved, 16 * 1024)) }
        (base! + start + count).copyMemory(from: from, byteCount: data.count)
        count += data.count
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base.map { $0 + start }, count: count))
    }

    /// Room for `n` bytes of body.
    private func grow(to n: Int) {
        guard let p = realloc(base, start + n) else {
            fatalError("out of memory holding a response body of \(n) bytes")
        }
        base = p
        allocated = start + n
    }
}

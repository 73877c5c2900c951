import Glibc

/// The bytes of a held response body: one allocation, filled front to back, read-only once the body is
/// complete. Owned by the `HeldBody` that fills it, then by whatever answers with it (the exchange, the requests
/// collapsed into it, a checked write's re-fetch); worker thread only.
///
/// An upstream read may land straight in the free space (`space`) when every byte it can bring is body:
/// `append` then finds the bytes already in place and only counts them, so a length-delimited body is copied by
/// the kernel into its storage and by nothing else.
final class HeldBytes {
    private var base: UnsafeMutableRawPointer?
    private(set) var count = 0
    private(set) var capacity = 0

    init(capacity: Int = 0) {
        if capacity > 0 { grow(to: capacity) }
    }

    deinit { free(base) }

    /// The free space after the bytes, at most `limit` bytes of it (never more than is allocated).
    func space(limit: Int) -> UnsafeMutableRawBufferPointer? {
        guard let b = base, capacity > count, limit > 0 else { return nil }
        return UnsafeMutableRawBufferPointer(start: b + count, count: min(capacity - count, limit))
    }

    /// Appends `data`; bytes a read put at the end already (see `space`) are only counted.
    func append(_ data: UnsafeRawBufferPointer) {
        guard let from = data.baseAddress, data.count > 0 else { return }
        if let b = base, UnsafeRawPointer(b + count) == from {
            count += data.count  // read in place
            return
        }
        if count + data.count > capacity { grow(to: max(count + data.count, capacity * 2, 16 * 1024)) }
        (base! + count).copyMemory(from: from, byteCount: data.count)
        count += data.count
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    private func grow(to n: Int) {
        guard let p = realloc(base, n) else { fatalError("out of memory holding a response body of \(n) bytes") }
        base = p
        capacity = n
    }
}

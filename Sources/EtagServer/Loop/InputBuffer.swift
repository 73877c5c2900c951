/// A growable byte buffer owned by one connection: bytes received but not yet consumed.
/// Touched only by the connection's worker thread.
struct InputBuffer {
    private(set) var base: UnsafeMutableRawPointer? = nil
    private(set) var capacity = 0
    private(set) var start = 0
    private(set) var end = 0

    var count: Int { end - start }
    var isEmpty: Bool { end == start }

    /// The unconsumed bytes. Valid until the next mutation.
    var view: UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + start, count: end - start)
    }

    /// Free space of at least `minFree` bytes at the end, moving or growing the storage as needed.
    mutating func reserveTail(_ minFree: Int) -> UnsafeMutableRawBufferPointer {
        if capacity - end < minFree {
            if start > 0 && capacity - count >= minFree {
                if let base, count > 0 { (base).copyMemory(from: base + start, byteCount: count) }
                end = count
                start = 0
            } else {
                let newCap = max(capacity * 2, count + minFree, 4096)
                let nb = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
                if let base {
                    if count > 0 { nb.copyMemory(from: base + start, byteCount: count) }
                    base.deallocate()
                }
                base = nb
                capacity = newCap
                end = count
                start = 0
            }
        }
        return UnsafeMutableRawBufferPointer(start: base! + end, count: capacity - end)
    }

    mutating func commit(_ n: Int) { end += n }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let tail = reserveTail(bytes.count)
        tail.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        end += bytes.count
    }

    mutating func consume(_ n: Int) {
        start += n
        if start >= end {
            start = 0
            end = 0
        }
    }

    mutating func free() {
        base?.deallocate()
        base = nil
        capacity = 0
        start = 0
        end = 0
    }
}

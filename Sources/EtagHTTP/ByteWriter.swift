/// Appends the pieces of an HTTP head to a byte array without intermediate strings.
///
/// The bytes written are `storage[0..<count]`; the storage past `count` is room already allocated (its content is
/// stale). Each piece is one bounds check and one `memcpy` into that room — `Array.append(contentsOf:)` costs
/// ~70 instructions and a retain/release per piece, and a head has a dozen pieces.
public struct ByteWriter: Sendable {
    private var storage: [UInt8]
    /// Bytes written so far.
    public private(set) var count: Int

    public init(capacity: Int = 512) {
        storage = capacity > 0 ? [UInt8](repeating: 0, count: capacity) : []
        count = 0
    }

    /// Writes into `storage`'s memory, from its start; give it back with `storage = writer.scratch` once the
    /// bytes are sent, and the next head is written without an allocation.
    public init(reusing storage: inout [UInt8]) {
        self.storage = []
        swap(&self.storage, &storage)
        count = 0
    }

    /// Writes after the bytes `storage` holds; take them back with `storage = writer.finish()`.
    public init(appendingTo storage: inout [UInt8]) {
        self.storage = []
        swap(&self.storage, &storage)
        count = self.storage.count
    }

    /// The bytes written, as an array of exactly that size (the writer is left empty).
    public mutating func finish() -> [UInt8] {
        var out: [UInt8] = []
        swap(&out, &storage)
        out.removeSubrange(count...)
        count = 0
        return out
    }

    /// The storage whole, written bytes and room alike, to be reused by `init(reusing:)`.
    public var scratch: [UInt8] { storage }

    /// The bytes written.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    @inline(__always) private mutating func put(_ p: UnsafeRawBufferPointer) {
        let n = p.count
        guard n > 0 else { return }
        let at = count
        if n > storage.count - at { grow(at + n) }
        storage.withUnsafeMutableBytes { ($0.baseAddress! + at).copyMemory(from: p.baseAddress!, byteCount: n) }
        count = at + n
    }

    @inline(never) private mutating func grow(_ needed: Int) {
        storage.append(contentsOf: repeatElement(0, count: max(needed, storage.count * 2, 64) - storage.count))
    }

    @inline(__always) public mutating func append(byte b: UInt8) {
        if count == storage.count { grow(count + 1) }
        storage[count] = b
        count += 1
    }

    @inline(__always) public mutating func append(_ s: StaticString) {
        put(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends a runtime string (literals go to the `StaticString` overload, which copies without decoding).
    @inline(__always) public mutating func append(string s: String) {
        var s = s
        s.withUTF8 { put(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) public mutating func append(_ b: [UInt8], _ r: Range<Int>) {
        b.withUnsafeBytes { put(UnsafeRawBufferPointer(rebasing: $0[r])) }
    }

    @inline(__always) public mutating func append(bytes b: [UInt8]) {
        b.withUnsafeBytes { put($0) }
    }

    public mutating func append(decimal v: UInt64) {
        if v == 0 { return append(byte: 0x30) }
        var tmp: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes of scratch
        withUnsafeMutableBytes(of: &tmp) { t in
            var n = v
            var i = 32
            while n > 0 {
                i -= 1
                t[i] = UInt8(truncatingIfNeeded: 0x30 + n % 10)
                n /= 10
            }
            put(UnsafeRawBufferPointer(rebasing: t[i..<32]))
        }
    }

    public mutating func append(decimal v: Int) { append(decimal: UInt64(v)) }

    /// Appends "Content-Length: N\r\n".
    public mutating func contentLength<N: BinaryInteger>(_ n: N) {
        append("Content-Length: ")
        append(decimal: UInt64(n))
        append("\r\n")
    }

    /// Appends "NAME: VALUE\r\n".
    public mutating func field(_ name: StaticString, _ value: StaticString) {
        append(name)
        append(": ")
        append(value)
        append("\r\n")
    }

    /// Appends a field copied from a parsed head: its name, colon, whitespace and value as received, then CRLF
    /// (a bare LF ending, which the parser tolerates, is not passed on).
    public mutating func field(from block: FieldBlock, _ f: HeaderField) {
        append(block.bytes, f.name.lowerBound..<f.value.upperBound)
        append("\r\n")
    }
}

/// Chunked transfer coding output (RFC 9112 §7.1).
public enum ChunkedEncoder {
    /// "HEX\r\n" for a chunk of `count` bytes.
    public static func header(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(18)
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var shift = 60
        var started = false
        while shift >= 0 {
            let d = (count >> shift) & 0xF
            if d != 0 || started || shift == 0 {
                out.append(digits[d])
                started = true
            }
            shift -= 4
        }
        out.append(0x0D)
        out.append(0x0A)
        return out
    }

    public static let crlf: [UInt8] = [0x0D, 0x0A]
    /// The last chunk and an empty trailer section.
    public static let last: [UInt8] = Array("0\r\n\r\n".utf8)
}

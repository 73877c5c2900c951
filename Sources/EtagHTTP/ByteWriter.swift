/// Appends the pieces of an HTTP head to a byte array without intermediate strings.
public struct ByteWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 512) {
        bytes = []
        if capacity > 0 { bytes.reserveCapacity(capacity) }
    }

    /// Writes into `storage`'s memory (emptied first); give it back with `storage = writer.bytes` once the
    /// bytes are sent, and the next head is written without an allocation.
    public init(reusing storage: inout [UInt8]) {
        bytes = []
        swap(&bytes, &storage)
        bytes.removeAll(keepingCapacity: true)
    }

    @inline(__always) public mutating func append(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends a runtime string (literals go to the `StaticString` overload, which copies without decoding).
    @inline(__always) public mutating func append(string s: String) {
        bytes.append(contentsOf: s.utf8)
    }

    @inline(__always) public mutating func append(_ b: [UInt8], _ r: Range<Int>) {
        bytes.append(contentsOf: b[r])
    }

    @inline(__always) public mutating func append(bytes b: [UInt8]) {
        bytes.append(contentsOf: b)
    }

    public mutating func append(decimal v: UInt64) {
        if v == 0 {
            bytes.append(0x30)
            return
        }
        var tmp: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes of scratch
        withUnsafeMutableBytes(of: &tmp) { t in
            var n = v
            var i = 32
            while n > 0 {
                i -= 1
                t[i] = UInt8(truncatingIfNeeded: 0x30 + n % 10)
                n /= 10
            }
            bytes.append(contentsOf: t[i..<32])
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
        bytes.append(contentsOf: block.bytes[f.name.lowerBound..<f.value.upperBound])
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

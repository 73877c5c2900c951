/// Character classes of RFC 9110 §5.6.2 (tchar) and §5.5 (field-vchar), as 256-entry tables. Read through
/// immutable pointers (allocated once, never freed) so the per-byte lookups in the parser carry no bounds check.
public enum ByteClass {
    private static func table(_ build: () -> [Bool]) -> UnsafePointer<Bool> {
        let p = UnsafeMutablePointer<Bool>.allocate(capacity: 256)
        let t = build()
        for i in 0..<256 { p[i] = t[i] }
        return UnsafePointer(p)
    }

    /// tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    nonisolated(unsafe) static let token: UnsafePointer<Bool> = table {
        var t = [Bool](repeating: false, count: 256)
        for c in UInt8(ascii: "0")...UInt8(ascii: "9") { t[Int(c)] = true }
        for c in UInt8(ascii: "a")...UInt8(ascii: "z") { t[Int(c)] = true }
        for c in UInt8(ascii: "A")...UInt8(ascii: "Z") { t[Int(c)] = true }
        for c in "!#$%&'*+-.^_`|~".utf8 { t[Int(c)] = true }
        return t
    }

    /// Bytes allowed inside a field value: HTAB, SP, VCHAR, obs-text. CR, LF, NUL and other CTLs are not.
    nonisolated(unsafe) static let fieldValue: UnsafePointer<Bool> = table {
        var t = [Bool](repeating: false, count: 256)
        t[0x09] = true
        for c in 0x20...0x7E { t[c] = true }
        for c in 0x80...0xFF { t[c] = true }
        return t
    }

    /// Bytes allowed in a request-target: visible ASCII and obs-text; no whitespace or CTLs.
    nonisolated(unsafe) static let target: UnsafePointer<Bool> = table {
        var t = [Bool](repeating: false, count: 256)
        for c in 0x21...0x7E { t[c] = true }
        for c in 0x80...0xFF { t[c] = true }
        return t
    }

    @inline(__always) static func lower(_ c: UInt8) -> UInt8 {
        (c >= 0x41 && c <= 0x5A) ? c | 0x20 : c
    }

    @inline(__always) public static func hexValue(_ c: UInt8) -> UInt64? {
        switch c {
        case 0x30...0x39: return UInt64(c - 0x30)
        case 0x41...0x46: return UInt64(c - 0x41 + 10)
        case 0x61...0x66: return UInt64(c - 0x61 + 10)
        default: return nil
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Case-insensitive comparison of `range` with a lowercase name or token (letters, digits and "-": field
    /// names, "close", "chunked", "100-continue", "http"…), eight bytes at a time. Setting bit 0x20 of every byte
    /// lowercases letters and leaves digits and "-" alone; the only other bytes it maps onto those are control
    /// bytes (0x0D onto "-", 0x10–0x19 onto digits), which the parser refuses in names, values and targets.
    @usableFromInline @inline(__always)
    func equalsLowercase(_ range: Range<Int>, _ name: StaticString) -> Bool {
        let n = name.utf8CodeUnitCount
        guard range.count == n else { return false }
        let p = UnsafeRawPointer(name.utf8Start)
        let s = baseAddress! + range.lowerBound
        var i = 0
        while i + 8 <= n {
            let a = s.loadUnaligned(fromByteOffset: i, as: UInt64.self) | 0x2020_2020_2020_2020
            if a != p.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < n {
            if s.load(fromByteOffset: i, as: UInt8.self) | 0x20 != p.load(fromByteOffset: i, as: UInt8.self) {
                return false
            }
            i += 1
        }
        return true
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Finding the end of a head and splitting its field lines (RFC 9112 §2.2, §5).
enum HeadScanner {
    /// Index just past the empty line that ends the head starting at `start`, or nil if it has not arrived.
    /// `from` lets a caller resume a scan. A line ends with CRLF or, leniently (RFC 9112 §2.2), a bare LF;
    /// a bare CR is rejected later by the line parser.
    static func findEnd(_ buf: UnsafeRawBufferPointer, start: Int, from: Int) -> Int? {
        var i = max(from, start)
        let n = buf.count
        guard let base = buf.baseAddress else { return nil }
        while i < n {
            // memchr finds each LF with SIMD; only LFs need a look.
            guard let p = memchr(base + i, 0x0A, n - i) else { return nil }
            i = base.distance(to: UnsafeRawPointer(p))
            // Is the line after this LF empty?
            if i + 1 < n, buf[i + 1] == 0x0A { return i + 2 }
            if i + 2 < n, buf[i + 1] == 0x0D, buf[i + 2] == 0x0A { return i + 3 }
            if i + 1 >= n || (i + 2 >= n && buf[i + 1] == 0x0D) { return nil }
            i += 1
        }
        return nil
    }

    /// Index of the LF ending the line that starts at `i` (before `end`); throws on a bare CR.
    @inline(__always)
    static func lineEnd(
        _ buf: UnsafeRawBufferPointer, _ i: Int, _ end: Int
    ) throws(HTTPParseError) -> (
        contentEnd: Int, next: Int
    ) {
        var j = i
        while j < end {
            let c = buf[j]
            if c == 0x0A { return (j, j + 1) }
            if c == 0x0D {
                guard j + 1 < end, buf[j + 1] == 0x0A else { throw .bad("bare CR in the message head") }
                return (j, j + 2)
            }
            j += 1
        }
        throw .bad("unterminated line in the message head")
    }

    /// Parses field lines from `start` up to the empty line ending at `end` (RFC 9112 §5).
    /// The fields are appended to `fields` (which the caller passes empty, keeping its capacity).
    static func parseFields(
        _ buf: UnsafeRawBufferPointer, from start: Int, end: Int, maxCount: Int, into fields: inout [HeaderField]
    ) throws(HTTPParseError) {
        if fields.capacity < 16 { fields.reserveCapacity(16) }
        var i = start
        let token = ByteClass.token
        let valueOK = ByteClass.fieldValue
        while i < end {
            let c0 = buf[i]
            if c0 == 0x0D || c0 == 0x0A {
                // The empty line ends the head only where the head ends (RFC 9112 §2.2). A line that merely starts
                // with CR ("\rContent-Length: 5", "\r\r\n") must not end it early: the fields after it would be
                // dropped here yet read by the next hop (request smuggling).
                if (c0 == 0x0A && i + 1 == end) || (c0 == 0x0D && i + 2 == end && buf[i + 1] == 0x0A) { break }
                throw .bad("bare CR in the message head")
            }
            // RFC 9112 §5.2: obs-fold is rejected in requests; we reject it everywhere.
            if c0 == 0x20 || c0 == 0x09 { throw .bad("obsolete line folding (obs-fold) in a header field") }
            var j = i
            while j < end, token[Int(buf[j])] { j += 1 }
            guard j < end else { throw .bad("malformed header field") }
            if buf[j] != UInt8(ascii: ":") {
                // RFC 9112 §5.1: no whitespace is allowed between the field name and the colon.
                if buf[j] == 0x20 || buf[j] == 0x09 {
                    throw .bad("whitespace between a header field name and the colon")
                }
                throw .bad("invalid character in a header field name")
            }
            guard j > i else { throw .bad("empty header field name") }
            let name = i..<j
            j += 1
            while j < end, buf[j] == 0x20 || buf[j] == 0x09 { j += 1 }
            let valueStart = j
            // One pass: every value byte is checked, and the first one that is not a value byte must end the line
            // (CR LF, or a bare LF); CR, LF, NUL and the other CTLs are not value bytes (RFC 9110 §5.5).
            var k = valueStart
            // Eight bytes at a time while none can be a CTL or DEL, then byte by byte (the word test has no false
            // negatives; a false positive only ends the fast part early).
            while k + 8 <= end {
                let w = buf.loadUnaligned(fromByteOffset: k, as: UInt64.self)
                let below20 = (w &- 0x2020_2020_2020_2020) & ~w & 0x8080_8080_8080_8080
                let x = w ^ 0x7F7F_7F7F_7F7F_7F7F
                let del = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
                if below20 | del != 0 { break }
                k += 8
            }
            while k < end, valueOK[Int(buf[k])] { k += 1 }
            let contentEnd = k
            let next: Int
            if k < end, buf[k] == 0x0A {
                next = k + 1
            } else if k < end, buf[k] == 0x0D {
                guard k + 1 < end, buf[k + 1] == 0x0A else { throw .bad("bare CR in the message head") }
                next = k + 2
            } else if k < end {
                throw .bad("invalid character in a header field value")
            } else {
                throw .bad("unterminated line in the message head")
            }
            var valueEnd = contentEnd
            while valueEnd > valueStart, buf[valueEnd - 1] == 0x20 || buf[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            fields.append(HeaderField(name: name, value: valueStart..<valueEnd))
            if fields.count > maxCount { throw HTTPParseError(431, "too many header fields") }
            i = next
        }
    }

    /// Parses "HTTP/1.x" at `r`; returns the minor version. RFC 9112 §2.3.
    static func version(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        guard r.count == 8 else { return nil }
        let s = r.lowerBound
        guard buf[s] == 0x48, buf[s + 1] == 0x54, buf[s + 2] == 0x54, buf[s + 3] == 0x50, buf[s + 4] == 0x2F,
            buf[s + 6] == 0x2E
        else { return nil }
        let major = buf[s + 5]
        let minor = buf[s + 7]
        guard major >= 0x30, major <= 0x39, minor >= 0x30, minor <= 0x39 else { return nil }
        if major != 0x31 { return -1 }  // a major version other than 1
        return Int(minor - 0x30)
    }

    /// Splits a comma-separated list value into trimmed element ranges (RFC 9110 §5.6.1), skipping empty ones.
    static func listElements(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = r.lowerBound
        while i < r.upperBound {
            while i < r.upperBound, buf[i] == 0x20 || buf[i] == 0x09 || buf[i] == 0x2C { i += 1 }
            let s = i
            while i < r.upperBound, buf[i] != 0x2C { i += 1 }
            var e = i
            while e > s, buf[e - 1] == 0x20 || buf[e - 1] == 0x09 { e -= 1 }
            if e > s { out.append(s..<e) }
        }
        return out
    }

    /// A Content-Length value: plain digits, or a list of identical plain digits (RFC 9110 §8.6,
    /// RFC 9112 §6.3 item 5). Nil when invalid, when list members differ, or when it would overflow.
    static func contentLength(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64? {
        var value: UInt64? = nil
        var i = r.lowerBound
        while i <= r.upperBound {
            var j = i
            while j < r.upperBound, buf[j] != 0x2C { j += 1 }
            var s = i
            var e = j
            while s < e, buf[s] == 0x20 || buf[s] == 0x09 { s += 1 }
            while e > s, buf[e - 1] == 0x20 || buf[e - 1] == 0x09 { e -= 1 }
            guard e > s, e - s <= 18 else { return nil }
            var v: UInt64 = 0
            for k in s..<e {
                let c = buf[k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + UInt64(c - 0x30)
            }
            if let old = value, old != v { return nil }
            value = v
            i = j + 1
        }
        return value
    }

    /// The tokens of a Connection field (RFC 9110 §7.6.1): "close", "keep-alive", and the names of other
    /// hop-by-hop fields.
    static func connectionTokens(
        _ b: UnsafeRawBufferPointer, _ value: Range<Int>, close: inout Bool, keepAlive: inout Bool,
        options: inout [Range<Int>]
    ) {
        for t in listElements(b, value) {
            if b.equalsLowercase(t, "close") {
                close = true
            } else if b.equalsLowercase(t, "keep-alive") {
                keepAlive = true
            } else {
                options.append(t)
            }
        }
    }
}

import EtagHTTP

/// `X-Request-Id`: the client's is kept when it is 1–128 visible ASCII characters; otherwise the proxy makes one.
/// It is sent upstream, returned to the client and written to the access log. Pure.
public enum RequestID {
    public static let maxLength = 128
    /// An exchange keeps its id as the whole field line, `X-Request-Id: <id>\r\n`, written into every head at once.
    public static let prefixLength = 14

    /// The field line for a client's id.
    public static func line(_ id: ArraySlice<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: "X-Request-Id: ".utf8)
        out.append(contentsOf: id)
        out.append(13)
        out.append(10)
    }

    /// The id in a field line.
    public static func id(ofLine line: [UInt8]) -> ArraySlice<UInt8> {
        line.count > prefixLength + 2 ? line[prefixLength..<(line.count - 2)] : []
    }

    /// The client's first X-Request-Id value when it may be kept.
    public static func clientValue(_ req: RequestHead) -> Range<Int>? {
        guard let r = req.requestIdRange, r.count >= 1, r.count <= maxLength else { return nil }
        for i in r where req.head.bytes[i] < 0x21 || req.head.bytes[i] > 0x7E { return nil }
        return r
    }
}

/// Makes request ids: 32 lowercase hex digits, a per-worker random prefix and a counter (unique within the process,
/// and across processes with overwhelming likelihood). It keeps the whole field line, `X-Request-Id: <id>\r\n`, in
/// memory of its own and counts the counter's hex digits up in place, so an id costs a few instructions and a
/// 32-byte copy. One per worker; not thread-safe.
public final class RequestIDGenerator: @unchecked Sendable {
    public static let length = 32
    static let start = RequestID.prefixLength
    static let lineLength = RequestID.prefixLength + length + 2
    private let line: UnsafeMutablePointer<UInt8>

    public init(seed: UInt64) {
        var bytes = Array("X-Request-Id: ".utf8)
        Self.hex(seed, into: &bytes)
        Self.hex(0, into: &bytes)
        bytes += [13, 10]
        line = .allocate(capacity: Self.lineLength)
        line.initialize(from: bytes, count: Self.lineLength)
    }

    deinit { line.deallocate() }

    /// Replaces `out` with the field line of the next id (its memory is reused once it holds such a line).
    public func next(into out: inout [UInt8]) {
        var i = Self.start + Self.length - 1
        while i >= Self.start + Self.length / 2 {
            switch line[i] {
            case UInt8(ascii: "9"): line[i] = UInt8(ascii: "a")
            case UInt8(ascii: "f"): line[i] = UInt8(ascii: "0")  // carry on to the next digit
            default: line[i] += 1
            }
            if line[i] != UInt8(ascii: "0") { break }
            i -= 1
        }
        if out.count != Self.lineLength {
            out = Array(UnsafeBufferPointer(start: line, count: Self.lineLength))
            return
        }
        out.withUnsafeMutableBufferPointer { o in
            (o.baseAddress! + Self.start).update(from: line + Self.start, count: Self.length)
        }
    }

    static func hex(_ v: UInt64, into out: inout [UInt8]) {
        let table: StaticString = "0123456789abcdef"
        var shift: UInt64 = 60
        while true {
            out.append(table.utf8Start[Int((v >> shift) & 0xF)])
            if shift == 0 { break }
            shift -= 4
        }
    }
}

import EtagHTTP

/// `X-Request-Id`: the client's is kept when it is 1–128 visible ASCII characters; otherwise the proxy makes one.
/// It is sent upstream, returned to the client and written to the access log. Pure.
public enum RequestID {
    public static let maxLength = 128

    /// The client's first X-Request-Id value when it may be kept.
    public static func clientValue(_ req: RequestHead) -> Range<Int>? {
        guard let r = req.requestIdRange, r.count >= 1, r.count <= maxLength else { return nil }
        for i in r where req.head.bytes[i] < 0x21 || req.head.bytes[i] > 0x7E { return nil }
        return r
    }
}

/// Makes request ids: 32 lowercase hex digits, a per-worker random prefix and a counter (unique within the process,
/// and across processes with overwhelming likelihood). The counter is kept as hex digits and counted up in place,
/// so an id costs a few instructions and a 32-byte copy. One per worker; not thread-safe.
public struct RequestIDGenerator: Sendable {
    public static let length = 32
    private var digits: [UInt8]

    public init(seed: UInt64) {
        digits = []
        Self.hex(seed, into: &digits)
        Self.hex(0, into: &digits)
    }

    /// Replaces `out`'s contents with the next id (its memory is reused once it holds an id).
    public mutating func next(into out: inout [UInt8]) {
        digits.withUnsafeMutableBufferPointer { d in
            var i = Self.length - 1
            while i >= Self.length / 2 {
                switch d[i] {
                case UInt8(ascii: "9"): d[i] = UInt8(ascii: "a")
                case UInt8(ascii: "f"): d[i] = UInt8(ascii: "0")  // carry on to the next digit
                default: d[i] += 1
                }
                if d[i] != UInt8(ascii: "0") { break }
                i -= 1
            }
        }
        if out.count != Self.length {
            out = digits
            return
        }
        out.withUnsafeMutableBufferPointer { o in
            digits.withUnsafeBufferPointer { o.baseAddress!.update(from: $0.baseAddress!, count: Self.length) }
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

import EtagHTTP

/// `X-Request-Id`: the client's is kept when it is 1–128 visible ASCII characters; otherwise the proxy makes one.
/// It is sent upstream, returned to the client and written to the access log. Pure.
public enum RequestID {
    public static let maxLength = 128

    /// The client's first X-Request-Id value when it may be kept.
    public static func clientValue(_ head: FieldBlock) -> Range<Int>? {
        guard let r = head.firstValue("x-request-id"), r.count >= 1, r.count <= maxLength else { return nil }
        for i in r where head.bytes[i] < 0x21 || head.bytes[i] > 0x7E { return nil }
        return r
    }
}

/// Makes request ids: 32 lowercase hex digits, a per-worker random prefix and a counter (unique within the process,
/// and across processes with overwhelming likelihood). One per worker; not thread-safe.
public struct RequestIDGenerator: Sendable {
    private let prefix: UInt64
    private var counter: UInt64 = 0

    public init(seed: UInt64) { prefix = seed }

    /// Replaces `out`'s contents with the next id (its capacity is reused).
    public mutating func next(into out: inout [UInt8]) {
        counter &+= 1
        out.removeAll(keepingCapacity: true)
        Self.hex(prefix, into: &out)
        Self.hex(counter, into: &out)
    }

    static func hex(_ v: UInt64, into out: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        var shift: UInt64 = 60
        while true {
            out.append(digits.utf8Start[Int((v >> shift) & 0xF)])
            if shift == 0 { break }
            shift -= 4
        }
    }
}

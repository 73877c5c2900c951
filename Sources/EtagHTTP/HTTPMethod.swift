/// The request methods the proxy distinguishes (RFC 9110 §9).
public enum HTTPMethod: Sendable, Equatable {
    case get, head, post, put, patch, delete, options, trace, connect, other

    /// RFC 9110 §9.2.1: GET, HEAD, OPTIONS and TRACE are safe.
    public var isSafe: Bool {
        switch self {
        case .get, .head, .options, .trace: return true
        default: return false
        }
    }

    /// RFC 9110 §9.2.2: safe methods plus PUT and DELETE are idempotent.
    public var isIdempotent: Bool { isSafe || self == .put || self == .delete }

    static func classify(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> HTTPMethod {
        // Methods are case-sensitive (RFC 9110 §9.1).
        func eq(_ s: StaticString) -> Bool {
            guard r.count == s.utf8CodeUnitCount else { return false }
            var i = 0
            for j in r {
                if buf[j] != s.utf8Start[i] { return false }
                i += 1
            }
            return true
        }
        switch r.count {
        case 3: return eq("GET") ? .get : eq("PUT") ? .put : .other
        case 4: return eq("HEAD") ? .head : eq("POST") ? .post : .other
        case 5: return eq("PATCH") ? .patch : eq("TRACE") ? .trace : .other
        case 6: return eq("DELETE") ? .delete : .other
        case 7: return eq("OPTIONS") ? .options : eq("CONNECT") ? .connect : .other
        default: return .other
        }
    }
}

import EtagHTTP

/// Which resource a write's answer re-fetches for its ETag (`concurrency.etag_after_write: refetch`).
public enum Refetch: Sendable, Equatable {
    case none
    /// The request's own target.
    case target
    /// The same-origin Location a POST created (its path).
    case location([UInt8])

    public var waits: Bool { self != .none }

    public var path: [UInt8]? {
        if case .location(let p) = self { return p }
        return nil
    }

    /// - Parameters:
    ///   - location: the answer's Location field value, if any.
    ///   - host: the request's Host, to tell a same-origin Location.
    public static func after(
        method: HTTPMethod, status: Int, location: [UInt8]?, host: [UInt8], mode: ETagAfterWrite
    ) -> Refetch {
        // RFC 9110 §9.2.1: a safe method (OPTIONS, TRACE) changes nothing, so there is no new tag to fetch.
        guard mode == .refetch, !method.isSafe, status >= 200, status < 300 else { return .none }
        switch method {
        case .delete:
            return .none  // nothing left to tag
        case .post:
            // RFC 9110 §15.3.2: a 201's Location names the new resource.
            guard status == 201, let location, let path = CacheKeyBuilder.sameOriginPath(location, host: host) else {
                return .none
            }
            return .location(path)
        default:
            return .target
        }
    }
}

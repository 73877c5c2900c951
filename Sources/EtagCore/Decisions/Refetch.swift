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

    /// Whether a write's re-fetch GET is sent right behind the write on the same upstream connection
    /// (`concurrency.pipeline_refetch`), before the write's answer arrives. Only where the GET is known before that
    /// answer — it re-fetches the request's own target — and only behind an idempotent method: RFC 9112 §9.3.2
    /// lets a client pipeline after PUT, not after POST or PATCH. A pipelined GET whose answer is not wanted (the
    /// write failed, or named another resource) is never relayed: its connection is closed.
    public static func pipelines(method: HTTPMethod, mode: ETagAfterWrite, enabled: Bool) -> Bool {
        guard enabled, method.isIdempotent else { return false }
        return after(method: method, status: 200, location: nil, host: [], mode: mode) == .target
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

import EtagHTTP

/// RFC 9211 §2.2 `fwd` values the proxy uses: why the upstream was asked.
public enum ForwardReason: Sendable, Equatable {
    /// `bypass` (RFC 9211 §2.2): the cache was told not to answer now — a fleet replica that may be missing
    /// invalidations (`fleet.on_redis_down: fail_closed`).
    case miss, stale, request, varyMiss, bypass

    public var text: StaticString {
        switch self {
        case .miss: return "miss"
        case .stale: return "stale"
        case .request: return "request"
        case .varyMiss: return "vary-miss"
        case .bypass: return "bypass"
        }
    }
}

/// The `Cache-Status` field line (RFC 9211) the proxy adds to answers to GET/HEAD. Pure.
public enum CacheStatus {
    /// Answered from the shared cache (a 304).
    public static let hit: [UInt8] = Array("Cache-Status: etag-proxy; hit\r\n".utf8)
    static let missStored: [UInt8] = Array("Cache-Status: etag-proxy; fwd=miss; fwd-status=200; stored\r\n".utf8)
    static let missNotStored: [UInt8] = Array("Cache-Status: etag-proxy; fwd=miss; fwd-status=200\r\n".utf8)

    /// The line for a forwarded read: why it was forwarded, the upstream's status, whether the tag was stored,
    /// and `collapsed` when the answer was shared from another request's fetch.
    public static func forwarded(
        _ reason: ForwardReason, status: Int, stored: Bool, collapsed: Bool = false
    )
        -> [UInt8]
    {
        if status == 200 && reason == .miss && !collapsed { return stored ? missStored : missNotStored }
        var w = ByteWriter(capacity: 96)
        w.append("Cache-Status: etag-proxy; fwd=")
        w.append(reason.text)
        w.append("; fwd-status=")
        w.append(decimal: status)
        if stored { w.append("; stored") }
        if collapsed { w.append("; collapsed") }
        w.append("\r\n")
        return w.finish()
    }
}

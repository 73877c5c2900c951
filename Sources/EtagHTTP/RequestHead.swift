/// How a request's body is delimited (RFC 9112 §6.3).
public enum RequestFraming: Sendable, Equatable {
    case none
    case length(UInt64)
    case chunked
}

/// A parsed and validated request head.
public struct RequestHead: Sendable {
    public var head: FieldBlock
    public var method: HTTPMethod
    public var methodRange: Range<Int>
    /// The request-target as received.
    public var targetRange: Range<Int>
    /// Path and query to send upstream (origin-form); empty for an absolute-form target with no path.
    public var pathRange: Range<Int>
    /// The authority of an absolute-form target (RFC 9112 §3.2.2), which replaces Host.
    public var authorityRange: Range<Int>?
    /// The Host field value (or the absolute-form authority).
    public var hostRange: Range<Int>?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var framing: RequestFraming
    /// Whether the client wants the connection kept open after this exchange (RFC 9112 §9.3).
    public var keepAlive: Bool
    /// `Expect: 100-continue` (RFC 9110 §10.1.1).
    public var expectContinue: Bool
    /// Field names listed in Connection, other than close / keep-alive (hop-by-hop, RFC 9110 §7.6.1).
    public var connectionOptions: [Range<Int>]
    /// The first X-Request-Id value, found while the head was parsed.
    public var requestIdRange: Range<Int>? = nil

    public var isHTTP11: Bool { minorVersion >= 1 }

    public var methodString: String { head.string(methodRange) }
    public var targetString: String { head.string(targetRange) }
    public var hostString: String? { hostRange.map { head.string($0) } }
}

public enum HeadParseResult<Head> {
    /// The head has not fully arrived; `scanned` is where the next scan may resume.
    case incomplete(scanned: Int)
    /// The head and the number of buffer bytes it used (including skipped leading empty lines).
    case complete(Head, consumed: Int)
}

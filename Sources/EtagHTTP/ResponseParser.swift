/// How a response's body is delimited (RFC 9112 §6.3).
public enum ResponseFraming: Sendable, Equatable {
    case none
    case length(UInt64)
    case chunked
    /// Read until the upstream closes the connection (RFC 9112 §6.3 item 8).
    case untilClose
}

/// A parsed response head from the upstream.
public struct ResponseHead: Sendable {
    public var head: FieldBlock
    public var status: Int
    public var minorVersion: Int
    public var framing: ResponseFraming
    /// Whether the upstream connection may be reused after this response (RFC 9112 §9.3).
    public var keepAlive: Bool
    /// Field names listed in Connection (hop-by-hop, RFC 9110 §7.6.1).
    public var connectionOptions: [Range<Int>]
    /// Status code and reason phrase as received ("200 OK"), for the status line sent to the client.
    public var statusTextRange: Range<Int>

    /// 1xx other than 101: an interim response, followed by the final one (RFC 9110 §15.2).
    public var isInterim: Bool { status >= 100 && status < 200 && status != 101 }
}

/// Response-head parsing (RFC 9112 §4, §6.3). Errors mean the upstream is broken: the proxy answers 502.
public enum ResponseParser {
    /// Parses the response head at the start of `buf`; `requestMethod` decides whether a body follows.
    public static func parse(
        _ buf: UnsafeRawBufferPointer, requestMethod: HTTPMethod, limits: HTTPLimits, scanFrom: Int = 0
    ) throws(HTTPParseError) -> HeadParseResult<ResponseHead> {
        var storage = FieldBlock.empty
        return try parse(buf, requestMethod: requestMethod, limits: limits, scanFrom: scanFrom, storage: &storage)
    }

    /// `parse`, copying the head into `storage`'s memory when it is free (see `FieldBlock.refill`).
    public static func parse(
        _ buf: UnsafeRawBufferPointer, requestMethod: HTTPMethod, limits: HTTPLimits, scanFrom: Int = 0,
        storage: inout FieldBlock
    ) throws(HTTPParseError) -> HeadParseResult<ResponseHead> {
        guard let end = HeadScanner.findEnd(buf, start: 0, from: scanFrom) else {
            if buf.count > limits.maxHeadSize {
                throw HTTPParseError(502, "upstream response head larger than the limit")
            }
            return .incomplete(scanned: max(0, buf.count - 3))
        }
        if end > limits.maxHeadSize { throw HTTPParseError(502, "upstream response head larger than the limit") }
        let head = try storage.refill(with: UnsafeRawBufferPointer(rebasing: buf[0..<end])) {
            (b, copy, fields) throws(HTTPParseError) in try parseHead(b, copy, &fields, requestMethod, limits)
        }
        return .complete(head, consumed: end)
    }

    private static func parseHead(
        _ b: UnsafeRawBufferPointer, _ copy: [UInt8], _ fields: inout [HeaderField], _ method: HTTPMethod,
        _ limits: HTTPLimits
    ) throws(HTTPParseError) -> ResponseHead {
        // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
        let n = b.count
        guard n >= 12, let minor = HeadScanner.version(b, 0..<8), minor >= 0, b[8] == 0x20 else {
            throw HTTPParseError(502, "malformed upstream status line")
        }
        var status = 0
        for k in 9..<12 {
            let c = b[k]
            guard c >= 0x30, c <= 0x39 else { throw HTTPParseError(502, "malformed upstream status code") }
            status = status * 10 + Int(c - 0x30)
        }
        guard status >= 100 else { throw HTTPParseError(502, "malformed upstream status code") }
        let (lineEnd, next) = try wrap { () throws(HTTPParseError) in try HeadScanner.lineEnd(b, 12, n) }
        if lineEnd > 12, b[12] != 0x20 { throw HTTPParseError(502, "malformed upstream status line") }
        try wrap { () throws(HTTPParseError) in
            try HeadScanner.parseFields(b, from: next, end: n, maxCount: limits.maxHeaderCount, into: &fields)
        }

        var cl: UInt64? = nil
        var sawCL = false
        var teElements: [Range<Int>] = []
        var closeToken = false
        var keepAliveToken = false
        var options: [Range<Int>] = []
        for f in fields {
            let nm = f.name
            switch nm.count {
            case 14 where b.equalsLowercase(nm, "content-length"):
                // RFC 9112 §6.3 item 5: invalid Content-Length in a response is unrecoverable → 502.
                guard let v = HeadScanner.contentLength(b, f.value), !sawCL || cl == v else {
                    throw HTTPParseError(502, "invalid Content-Length from the upstream")
                }
                sawCL = true
                cl = v
            case 17 where b.equalsLowercase(nm, "transfer-encoding"):
                teElements += HeadScanner.listElements(b, f.value)
            case 10 where b.equalsLowercase(nm, "connection"):
                HeadScanner.connectionTokens(
                    b, f.value, close: &closeToken, keepAlive: &keepAliveToken, options: &options)
            default:
                break
            }
        }

        var keepAlive = closeToken ? false : (minor >= 1 ? true : keepAliveToken)
        let framing: ResponseFraming
        // RFC 9112 §6.3 items 1–8, in order.
        if method == .head || (status >= 100 && status < 200) || status == 204 || status == 304 {
            framing = .none
        } else if !teElements.isEmpty {
            // Item 3: both Transfer-Encoding and Content-Length "ought to be handled as an error" (a sign of
            // response splitting): refused, as nginx does, rather than guessing which one the sender meant.
            if sawCL { throw HTTPParseError(502, "the upstream sent both Transfer-Encoding and Content-Length") }
            // Item 4: a final coding other than chunked means read until close.
            if let last = teElements.last, b.equalsLowercase(last, "chunked"), teElements.count == 1 {
                framing = .chunked
            } else {
                framing = .untilClose
                keepAlive = false
            }
        } else if let cl {
            framing = .length(cl)  // even 0: the client must be told the (empty) length
        } else {
            framing = .untilClose
            keepAlive = false
        }
        return ResponseHead(
            head: FieldBlock(bytes: copy, fields: fields), status: status, minorVersion: minor, framing: framing,
            keepAlive: keepAlive, connectionOptions: options, statusTextRange: 9..<lineEnd)
    }

    /// Maps head-syntax errors of an upstream response to 502.
    private static func wrap<T>(_ body: () throws(HTTPParseError) -> T) throws(HTTPParseError) -> T {
        do {
            return try body()
        } catch {
            throw HTTPParseError(502, "upstream: " + error.detail)
        }
    }
}

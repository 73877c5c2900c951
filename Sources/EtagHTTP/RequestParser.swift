/// Strict HTTP/1.1 request-head parsing (RFC 9112 §2–§7). Pure: bytes in, a head or an error out.
public enum RequestParser {
    /// Parses the request head at the start of `buf`.
    /// - Parameters:
    ///   - buf: received bytes, starting at a message boundary.
    ///   - limits: head size and field count limits (431 beyond them).
    ///   - scanFrom: where a previous incomplete scan stopped.
    /// - Throws: `HTTPParseError` with the status to answer (400, 417, 431, 501, 505).
    public static func parse(
        _ buf: UnsafeRawBufferPointer, limits: HTTPLimits, scanFrom: Int = 0
    ) throws(HTTPParseError) -> HeadParseResult<RequestHead> {
        var storage = FieldBlock.empty
        return try parse(buf, limits: limits, scanFrom: scanFrom, storage: &storage)
    }

    /// `parse`, copying the head into `storage`'s memory when it is free (see `FieldBlock.refill`).
    public static func parse(
        _ buf: UnsafeRawBufferPointer, limits: HTTPLimits, scanFrom: Int = 0, storage: inout FieldBlock
    ) throws(HTTPParseError) -> HeadParseResult<RequestHead> {
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received before the request-line.
        var start = 0
        while start < buf.count, start < 8, buf[start] == 0x0D || buf[start] == 0x0A { start += 1 }
        guard let end = HeadScanner.findEnd(buf, start: start, from: max(scanFrom, start)) else {
            if buf.count - start > limits.maxHeadSize {
                throw HTTPParseError(431, "request head larger than the limit")
            }
            return .incomplete(scanned: max(start, buf.count - 3))
        }
        if end - start > limits.maxHeadSize { throw HTTPParseError(431, "request head larger than the limit") }
        let head = try storage.refill(with: UnsafeRawBufferPointer(rebasing: buf[start..<end])) {
            (b, copy, fields) throws(HTTPParseError) in try parseHead(b, copy, &fields, limits)
        }
        return .complete(head, consumed: end)
    }

    private static func parseHead(
        _ b: UnsafeRawBufferPointer, _ copy: [UInt8], _ fields: inout [HeaderField], _ limits: HTTPLimits
    ) throws(HTTPParseError) -> RequestHead {
        let n = b.count
        // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
        var i = 0
        let token = ByteClass.token
        while i < n, token[Int(b[i])] { i += 1 }
        guard i > 0, i < n, b[i] == 0x20 else { throw .bad("malformed request line") }
        let methodRange = 0..<i
        i += 1
        let targetStart = i
        let targetOK = ByteClass.target
        while i < n, targetOK[Int(b[i])] { i += 1 }
        guard i > targetStart, i < n, b[i] == 0x20 else { throw .bad("malformed request target") }
        let targetRange = targetStart..<i
        i += 1
        let versionStart = i
        let (lineEnd, next) = try HeadScanner.lineEnd(b, i, n)
        guard let minor = HeadScanner.version(b, versionStart..<lineEnd) else {
            throw .bad("malformed HTTP version")
        }
        guard minor >= 0 else { throw HTTPParseError(505, "only HTTP/1.x is supported") }
        try HeadScanner.parseFields(b, from: next, end: n, maxCount: limits.maxHeaderCount, into: &fields)
        let method = HTTPMethod.classify(b, methodRange)

        var framingCL: UInt64? = nil
        var sawCL = false
        var teElements: [Range<Int>] = []
        var hostRange: Range<Int>? = nil
        var hostCount = 0
        var closeToken = false
        var keepAliveToken = false
        var expectContinue = false
        var options: [Range<Int>] = []
        // Singleton fields that are not lists (RFC 9110 §5.3): two lines of one of them cannot be combined, and an
        // upstream reading only the first would be answered from a cache key built from both.
        var singletonRepeated = false
        var sawAuthorization = false
        var sawProxyAuthorization = false
        var sawContentType = false
        var requestIdRange: Range<Int>? = nil

        for f in fields {
            let nm = f.name
            switch nm.count {
            case 4 where b.equalsLowercase(nm, "host"):
                hostCount += 1
                hostRange = f.value
            case 14 where b.equalsLowercase(nm, "content-length"):
                // RFC 9112 §6.3 item 5: an invalid or differing Content-Length is unrecoverable.
                guard let v = HeadScanner.contentLength(b, f.value) else { throw .bad("invalid Content-Length") }
                if sawCL, framingCL != v { throw .bad("differing Content-Length values") }
                sawCL = true
                framingCL = v
            case 17 where b.equalsLowercase(nm, "transfer-encoding"):
                teElements += HeadScanner.listElements(b, f.value)
            case 10 where b.equalsLowercase(nm, "connection"):
                HeadScanner.connectionTokens(
                    b, f.value, close: &closeToken, keepAlive: &keepAliveToken, options: &options)
            case 13 where b.equalsLowercase(nm, "authorization"):
                singletonRepeated = singletonRepeated || sawAuthorization
                sawAuthorization = true
            case 19 where b.equalsLowercase(nm, "proxy-authorization"):
                singletonRepeated = singletonRepeated || sawProxyAuthorization
                sawProxyAuthorization = true
            case 12 where b.equalsLowercase(nm, "content-type"):
                singletonRepeated = singletonRepeated || sawContentType
                sawContentType = true
            case 12 where requestIdRange == nil && b.equalsLowercase(nm, "x-request-id"):
                requestIdRange = f.value
            case 6 where b.equalsLowercase(nm, "expect"):
                // RFC 9110 §10.1.1: 100-continue is the only expectation defined.
                if b.equalsLowercase(f.value, "100-continue") {
                    expectContinue = true
                } else {
                    throw HTTPParseError(417, "unsupported expectation")
                }
            default:
                break
            }
        }

        var framing = RequestFraming.none
        let sawTE = !teElements.isEmpty
        if sawTE {
            // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            if minor == 0 { throw .bad("Transfer-Encoding in an HTTP/1.0 request") }
            // RFC 9112 §6.3 item 3: both framings at once is a smuggling attempt; reject.
            if sawCL { throw .bad("both Content-Length and Transfer-Encoding") }
            // RFC 9112 §6.3 item 4: the final coding of a request must be chunked, or 400.
            guard let last = teElements.last, b.equalsLowercase(last, "chunked") else {
                throw .bad("Transfer-Encoding whose final coding is not chunked")
            }
            for e in teElements.dropLast() {
                if b.equalsLowercase(e, "chunked") { throw .bad("chunked applied more than once") }
            }
            // RFC 9112 §6.1: a transfer coding we do not understand gets 501.
            if teElements.count > 1 { throw HTTPParseError(501, "transfer codings other than chunked") }
            framing = .chunked
        } else if let cl = framingCL {
            framing = cl > 0 ? .length(cl) : .none
        }

        // Target forms (RFC 9112 §3.2).
        var pathRange = targetRange
        var authorityRange: Range<Int>? = nil
        let t0 = b[targetRange.lowerBound]
        if t0 == UInt8(ascii: "/") {
            // origin-form
        } else if t0 == UInt8(ascii: "*") {
            guard targetRange.count == 1, method == .options else { throw .bad("asterisk-form is only for OPTIONS") }
        } else if let (auth, path) = absoluteForm(b, targetRange) {
            authorityRange = auth
            pathRange = path
        } else if method == .connect {
            throw HTTPParseError(405, "CONNECT is not supported by this proxy")
        } else {
            throw .bad("malformed request target")
        }

        // RFC 3986 §5.2.4: a "." or ".." segment (also percent-encoded) would climb out of the upstream's base path,
        // and give one resource two cache keys and two leases; refused rather than resolved.
        if hasDotSegment(b, pathRange) { throw .bad("dot-segment (. or ..) in the request path") }

        // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is rejected with 400.
        if hostCount > 1 { throw .bad("more than one Host header field") }
        if singletonRepeated {
            throw .bad("more than one Authorization, Proxy-Authorization or Content-Type header field")
        }
        if minor >= 1, hostCount == 0 { throw .bad("missing Host header field") }
        if let h = hostRange, !validHost(b, h) { throw .bad("invalid Host header field") }
        if let a = authorityRange {
            // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
            hostRange = a
        }

        // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
        let keepAlive = closeToken ? false : (minor >= 1 ? true : keepAliveToken)
        return RequestHead(
            head: FieldBlock(bytes: copy, fields: fields), method: method, methodRange: methodRange,
            targetRange: targetRange, pathRange: pathRange, authorityRange: authorityRange, hostRange: hostRange,
            minorVersion: minor, framing: framing, keepAlive: keepAlive, expectContinue: expectContinue,
            connectionOptions: options, requestIdRange: requestIdRange)
    }

    /// Whether `path` has a segment that is `.` or `..`, each dot possibly written `%2e`/`%2E` (what the parser
    /// refuses in a request target; the config refuses it in the upstream's base path).
    public static func hasDotSegment(_ path: [UInt8]) -> Bool {
        path.withUnsafeBytes { hasDotSegment($0, 0..<$0.count) }
    }

    /// Whether the path (up to `?`) has a segment that is `.` or `..`, each dot possibly written `%2e`/`%2E`.
    static func hasDotSegment(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        var i = r.lowerBound
        let end = r.upperBound
        // Each segment starts after a '/' (or at the start of a path that does not begin with one).
        var segmentStart = i
        while i <= end {
            let atEnd = i == end || b[i] == UInt8(ascii: "?")
            if atEnd || b[i] == UInt8(ascii: "/") {
                if i > segmentStart && isDotSegment(b, segmentStart..<i) { return true }
                if atEnd { return false }
                segmentStart = i + 1
            }
            i += 1
        }
        return false
    }

    private static func isDotSegment(_ b: UnsafeRawBufferPointer, _ s: Range<Int>) -> Bool {
        var dots = 0
        var i = s.lowerBound
        while i < s.upperBound {
            if b[i] == UInt8(ascii: ".") {
                i += 1
            } else if b[i] == UInt8(ascii: "%"), i + 2 < s.upperBound, b[i + 1] == UInt8(ascii: "2"),
                b[i + 2] | 0x20 == UInt8(ascii: "e")
            {
                i += 3
            } else {
                return false
            }
            dots += 1
            if dots > 2 { return false }
        }
        return dots >= 1
    }

    /// "http://authority/path?query" → (authority, path+query). Nil when not an http(s) absolute URI.
    private static func absoluteForm(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> (Range<Int>, Range<Int>)? {
        var i = r.lowerBound
        while i < r.upperBound, b[i] != UInt8(ascii: ":") { i += 1 }
        let scheme = r.lowerBound..<i
        guard b.equalsLowercase(scheme, "http") || b.equalsLowercase(scheme, "https") else { return nil }
        guard i + 2 < r.upperBound, b[i + 1] == UInt8(ascii: "/"), b[i + 2] == UInt8(ascii: "/") else { return nil }
        let authStart = i + 3
        var j = authStart
        while j < r.upperBound, b[j] != UInt8(ascii: "/"), b[j] != UInt8(ascii: "?") { j += 1 }
        guard j > authStart, validHost(b, authStart..<j) else { return nil }
        return (authStart..<j, j..<r.upperBound)
    }

    /// Host = uri-host [ ":" port ] (RFC 9110 §7.2): reg-name, IPv4 or an IP-literal; no userinfo, path or spaces.
    static func validHost(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        for i in r {
            let c = b[i]
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"),
                UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"), UInt8(ascii: "!"), UInt8(ascii: "$"),
                UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"),
                UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
                continue
            default:
                return false
            }
        }
        return true
    }
}

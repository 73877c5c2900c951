import EtagHTTP

/// What a forwarded message keeps, drops and gains (RFC 9110 §7.6). Pure: heads in, bytes out.
/// Immutable; a class so that an exchange reaching it through the worker's settings retains one reference.
public final class ForwardingRules: Sendable {
    let via: [UInt8]
    let upstreamAuthority: [UInt8]
    let basePath: [UInt8]
    let preserveHost: Bool
    let dropUnderscoreFields: Bool
    /// The X-Forwarded-Proto line: how the client reached the proxy (`https` on a TLS listener).
    let forwardedProto: [UInt8]

    public init(config: ProxyConfig) {
        forwardedProto = Array("\r\nX-Forwarded-Proto: \(config.tls.enabled ? "https" : "http")\r\n".utf8)
        via = Array("1.1 \(config.forwarding.via)".utf8)
        upstreamAuthority = Array(config.upstream.authority.utf8)
        basePath = Array(config.upstream.basePath.utf8)
        preserveHost = config.forwarding.preserveHost
        dropUnderscoreFields = config.forwarding.dropUnderscoreFields
    }

    /// Whether a field name holds `_` (`forwarding.drop_underscore_fields`).
    @inline(__always)
    static func hasUnderscore(_ b: UnsafeRawBufferPointer, _ n: Range<Int>) -> Bool {
        for i in n where b[i] == UInt8(ascii: "_") { return true }
        return false
    }

    /// RFC 9110 §7.6.1: hop-by-hop fields, never forwarded; plus the fields this proxy rewrites itself.
    @inline(__always)
    static func droppedFromRequest(_ b: UnsafeRawBufferPointer, _ n: Range<Int>) -> Bool {
        switch n.count {
        case 2: return b.equalsLowercasePublic(n, "te")
        case 4: return b.equalsLowercasePublic(n, "host")
        case 6: return b.equalsLowercasePublic(n, "expect")
        case 7: return b.equalsLowercasePublic(n, "upgrade") || b.equalsLowercasePublic(n, "trailer")
        case 10: return b.equalsLowercasePublic(n, "connection") || b.equalsLowercasePublic(n, "keep-alive")
        case 12: return b.equalsLowercasePublic(n, "x-request-id")
        case 14: return b.equalsLowercasePublic(n, "content-length")
        case 15: return b.equalsLowercasePublic(n, "x-forwarded-for")
        case 16: return b.equalsLowercasePublic(n, "x-forwarded-host") || b.equalsLowercasePublic(n, "proxy-connection")
        case 17:
            return b.equalsLowercasePublic(n, "transfer-encoding") || b.equalsLowercasePublic(n, "x-forwarded-proto")
        case 19: return b.equalsLowercasePublic(n, "proxy-authorization")
        default: return false
        }
    }

    @inline(__always)
    static func droppedFromResponse(_ b: UnsafeRawBufferPointer, _ n: Range<Int>) -> Bool {
        switch n.count {
        case 2: return b.equalsLowercasePublic(n, "te")
        case 7: return b.equalsLowercasePublic(n, "upgrade") || b.equalsLowercasePublic(n, "trailer")
        case 10: return b.equalsLowercasePublic(n, "connection") || b.equalsLowercasePublic(n, "keep-alive")
        case 12: return b.equalsLowercasePublic(n, "x-request-id")
        case 14: return b.equalsLowercasePublic(n, "content-length")
        case 16: return b.equalsLowercasePublic(n, "proxy-connection")
        case 17: return b.equalsLowercasePublic(n, "transfer-encoding")
        case 18: return b.equalsLowercasePublic(n, "proxy-authenticate")
        default: return false
        }
    }

    /// Whether field `f` is named by a Connection option (RFC 9110 §7.6.1).
    @inline(__always)
    static func namedBy(_ options: [Range<Int>], _ b: UnsafeRawBufferPointer, _ f: Range<Int>) -> Bool {
        if options.isEmpty { return false }
        for o in options where o.count == f.count {
            var same = true
            var i = f.lowerBound
            for j in o {
                if b[i] | 0x20 != b[j] | 0x20 {
                    same = false
                    break
                }
                i += 1
            }
            if same { return true }
        }
        return false
    }

    /// The head sent upstream: always HTTP/1.1 and persistent, origin-form target with the base path,
    /// hop-by-hop fields removed, Host set, X-Forwarded-For appended, X-Forwarded-Proto/-Host and Via added.
    /// - Parameters:
    ///   - req: the client's request head.
    ///   - clientIP: the peer address of the client connection.
    /// - Parameters:
    ///   - asGet: send GET instead of the request's method (a HEAD is fetched as GET so its ETag is the GET's).
    ///   - dropTagConditions: remove If-Match / If-None-Match (the proxy evaluates them against its own tags,
    ///     which the upstream never issued).
    ///   - dropDateConditions: remove If-Modified-Since / If-Unmodified-Since (ignored when a tag condition is
    ///     present, RFC 9110 §13.1.3, §13.1.4).
    ///   - bodyLength: the body is sent buffered with this Content-Length (instead of the request's framing).
    ///   - requestIdLine: the exchange's `X-Request-Id` field line (the client's own is never forwarded beside it).
    public func upstreamRequestHead(
        _ req: RequestHead, clientIP: [UInt8], asGet: Bool = false, dropTagConditions: Bool = false,
        dropDateConditions: Bool = false, bodyLength: Int? = nil, requestIdLine: [UInt8] = []
    ) -> [UInt8] {
        let block = req.head
        var w = ByteWriter(capacity: block.bytes.count + 160)
        if asGet { w.append("GET") } else { w.append(block.bytes, req.methodRange) }
        w.append(" ")
        let path = req.pathRange
        if req.method == .options, path.count == 1, block.bytes[path.lowerBound] == UInt8(ascii: "*") {
            // RFC 9110 §9.3.7: `OPTIONS *` asks about the server, not a resource: it stays `*` (never `/base*`).
            w.append("*")
        } else {
            w.append(bytes: basePath)
            if path.isEmpty {
                w.append("/")
            } else if block.bytes[path.lowerBound] == UInt8(ascii: "?") {
                w.append("/")
                w.append(block.bytes, path)
            } else {
                w.append(block.bytes, path)
            }
        }
        w.append(" HTTP/1.1\r\nHost: ")
        if preserveHost, let h = req.hostRange {
            w.append(block.bytes, h)
        } else {
            w.append(bytes: upstreamAuthority)
        }
        w.append("\r\n")
        var xff: [Range<Int>] = []
        block.bytes.withUnsafeBytes { b in
            for f in block.fields {
                if Self.droppedFromRequest(b, f.name) {
                    if f.name.count == 15 && b.equalsLowercasePublic(f.name, "x-forwarded-for") { xff.append(f.value) }
                    continue
                }
                if Self.namedBy(req.connectionOptions, b, f.name) { continue }
                if dropUnderscoreFields && Self.hasUnderscore(b, f.name) { continue }
                if dropTagConditions || dropDateConditions,
                    Self.isConditional(b, f.name, tags: dropTagConditions, dates: dropDateConditions)
                {
                    continue
                }
                w.field(from: block, f)
            }
        }
        let sendsContent = req.method == .post || req.method == .put || req.method == .patch
        if let n = bodyLength {
            if n > 0 || sendsContent {
                w.contentLength(n)
            }
        } else {
            switch req.framing {
            case .length(let n):
                w.contentLength(n)
            case .chunked:
                w.append("Transfer-Encoding: chunked\r\n")
            case .none:
                // RFC 9110 §8.6: a request that normally has content says so even when it is empty.
                if sendsContent { w.append("Content-Length: 0\r\n") }
            }
        }
        appendForwarded(&w, req, clientIP: clientIP, earlierHops: xff, requestIdLine: requestIdLine)
        return w.finish()
    }

    /// X-Forwarded-For (earlier hops, then this client, one combined field), X-Forwarded-Proto,
    /// X-Forwarded-Host, Via, and the empty line that ends the head.
    private func appendForwarded(
        _ w: inout ByteWriter, _ req: RequestHead, clientIP: [UInt8], earlierHops: [Range<Int>], requestIdLine: [UInt8]
    ) {
        let block = req.head
        w.append("X-Forwarded-For: ")
        for r in earlierHops {
            w.append(block.bytes, r)
            w.append(", ")
        }
        w.append(bytes: clientIP)
        w.append(bytes: forwardedProto)
        if let h = req.hostRange {
            w.append("X-Forwarded-Host: ")
            w.append(block.bytes, h)
            w.append("\r\n")
        }
        w.append(bytes: requestIdLine)
        w.append("Via: ")
        w.append(bytes: via)
        w.append("\r\n\r\n")
    }

    /// A GET of `path` (default: the request's target) that sees the representation the client saw: the
    /// request's Host handling, its representation-selecting fields (Authorization, Cookie, Accept,
    /// Accept-Encoding, Accept-Language), X-Forwarded-* and Via — the pre-fetch before a conditional write and
    /// the re-fetch after it.
    public func fetchHead(
        _ req: RequestHead, clientIP: [UInt8], path: [UInt8]? = nil, requestIdLine: [UInt8] = []
    ) -> [UInt8] {
        let block = req.head
        var w = ByteWriter(capacity: 256)
        w.append("GET ")
        w.append(bytes: basePath)
        if let path {
            w.append(bytes: path)
        } else if req.pathRange.isEmpty {
            w.append("/")
        } else {
            w.append(block.bytes, req.pathRange)
        }
        w.append(" HTTP/1.1\r\nHost: ")
        if preserveHost, let h = req.hostRange { w.append(block.bytes, h) } else { w.append(bytes: upstreamAuthority) }
        w.append("\r\n")
        block.bytes.withUnsafeBytes { b in
            for f in block.fields {
                let n = f.name
                let selects: Bool
                switch n.count {
                case 6: selects = b.equalsLowercasePublic(n, "accept") || b.equalsLowercasePublic(n, "cookie")
                case 13: selects = b.equalsLowercasePublic(n, "authorization")
                case 15:
                    selects =
                        b.equalsLowercasePublic(n, "accept-encoding") || b.equalsLowercasePublic(n, "accept-language")
                default: selects = false
                }
                if selects { w.field(from: block, f) }
            }
        }
        appendForwarded(&w, req, clientIP: clientIP, earlierHops: [], requestIdLine: requestIdLine)
        return w.finish()
    }

    static func isConditional(_ b: UnsafeRawBufferPointer, _ n: Range<Int>, tags: Bool, dates: Bool) -> Bool {
        switch n.count {
        case 8: return tags && b.equalsLowercasePublic(n, "if-match")
        case 13: return tags && b.equalsLowercasePublic(n, "if-none-match")
        case 17: return dates && b.equalsLowercasePublic(n, "if-modified-since")
        case 19: return dates && b.equalsLowercasePublic(n, "if-unmodified-since")
        default: return false
        }
    }

    /// How the proxy frames a response body for the client.
    public enum ClientFraming: Sendable, Equatable {
        case none
        case length(UInt64)
        case chunked
        case untilClose
    }

    /// The framing to use toward the client for an upstream response (RFC 9112 §6, §7.1).
    public static func clientFraming(for resp: ResponseHead, clientIsHTTP11: Bool) -> ClientFraming {
        switch resp.framing {
        case .none: return .none
        case .length(let n): return .length(n)
        // Unknown length: chunked to an HTTP/1.1 client, close-delimited to an HTTP/1.0 one.
        case .chunked, .untilClose: return clientIsHTTP11 ? .chunked : .untilClose
        }
    }

    /// The head sent to the client: HTTP/1.1 status line, hop-by-hop fields removed, framing rewritten,
    /// Date added when missing (RFC 9110 §6.6.1), Via appended.
    /// - Parameters:
    ///   - keepAlive: whether the client connection stays open afterwards.
    public func clientResponseHead(
        _ resp: ResponseHead, framing: ClientFraming, keepAlive: Bool, clientIsHTTP11: Bool, date: [UInt8],
        dropETag: Bool = false, etag: [UInt8]? = nil, extra: [UInt8] = [], requestIdLine: [UInt8] = []
    ) -> [UInt8] {
        var w = ByteWriter(capacity: resp.head.bytes.count + 128 + extra.count)
        clientResponseHead(
            into: &w, resp, framing: framing, keepAlive: keepAlive, clientIsHTTP11: clientIsHTTP11, date: date,
            dropETag: dropETag, etag: etag, extra: extra, requestIdLine: requestIdLine)
        return w.finish()
    }

    /// `clientResponseHead`, appended to `w`.
    public func clientResponseHead(
        into w: inout ByteWriter, _ resp: ResponseHead, framing: ClientFraming, keepAlive: Bool,
        clientIsHTTP11: Bool, date: [UInt8], dropETag: Bool = false, etag: [UInt8]? = nil, extra: [UInt8] = [],
        requestIdLine: [UInt8] = []
    ) {
        let block = resp.head
        w.append("HTTP/1.1 ")
        w.append(block.bytes, resp.statusTextRange)
        w.append("\r\n")
        var sawDate = false
        block.bytes.withUnsafeBytes { b in
            for f in block.fields {
                if Self.droppedFromResponse(b, f.name) { continue }
                if Self.namedBy(resp.connectionOptions, b, f.name) { continue }
                if dropETag, f.name.count == 4, b.equalsLowercasePublic(f.name, "etag") { continue }
                if f.name.count == 4, b.equalsLowercasePublic(f.name, "date") { sawDate = true }
                w.field(from: block, f)
            }
        }
        if !sawDate {
            w.append("Date: ")
            w.append(bytes: date)
            w.append("\r\n")
        }
        switch framing {
        case .length(let n):
            w.contentLength(n)
        case .chunked:
            w.append("Transfer-Encoding: chunked\r\n")
        case .none, .untilClose:
            break
        }
        if let etag {
            w.append("ETag: ")
            w.append(bytes: etag)
            w.append("\r\n")
        }
        appendResponseTail(
            &w, extra: extra, requestIdLine: requestIdLine, keepAlive: keepAlive, clientIsHTTP11: clientIsHTTP11)
    }

    /// Via, the `extra` lines, the persistence field (RFC 9112 §9.3) and the empty line ending a response head.
    private func appendResponseTail(
        _ w: inout ByteWriter, extra: [UInt8], requestIdLine: [UInt8], keepAlive: Bool, clientIsHTTP11: Bool
    ) {
        w.append("Via: ")
        w.append(bytes: via)
        w.append("\r\n")
        w.append(bytes: extra)
        w.append(bytes: requestIdLine)
        if !keepAlive {
            w.append("Connection: close\r\n")
        } else if !clientIsHTTP11 {
            w.append("Connection: keep-alive\r\n")
        }
        w.append("\r\n")
    }

    /// The fields of a 200 that its 304 repeats besides ETag and Date (RFC 9110 §15.4.5): Cache-Control,
    /// Content-Location, Expires, Vary — as field lines.
    public static func notModifiedFields(_ resp: ResponseHead) -> [UInt8] {
        let block = resp.head
        var w = ByteWriter(capacity: 0)  // most responses have none of these: no allocation then
        block.bytes.withUnsafeBytes { b in
            for f in block.fields {
                let n = f.name
                let keep: Bool
                switch n.count {
                case 4: keep = b.equalsLowercasePublic(n, "vary")
                case 7: keep = b.equalsLowercasePublic(n, "expires")
                case 13: keep = b.equalsLowercasePublic(n, "cache-control")
                case 16: keep = b.equalsLowercasePublic(n, "content-location")
                default: keep = false
                }
                if keep { w.field(from: block, f) }
            }
        }
        return w.finish()
    }

    /// A 304 Not Modified head: ETag, Date, the 200's validator-related fields, Via, and `extra` lines.
    public func notModifiedHead(
        etag: [UInt8], date: [UInt8], fields: [UInt8], extra: [UInt8], keepAlive: Bool, clientIsHTTP11: Bool,
        requestIdLine: [UInt8] = []
    ) -> [UInt8] {
        var w = ByteWriter(capacity: 256 + fields.count)
        notModifiedHead(
            into: &w, etag: etag, date: date, fields: fields, extra: extra, keepAlive: keepAlive,
            clientIsHTTP11: clientIsHTTP11, requestIdLine: requestIdLine)
        return w.finish()
    }

    /// `notModifiedHead`, appended to `w`.
    public func notModifiedHead(
        into w: inout ByteWriter, etag: [UInt8], date: [UInt8], fields: [UInt8], extra: [UInt8], keepAlive: Bool,
        clientIsHTTP11: Bool, requestIdLine: [UInt8] = []
    ) {
        w.append("HTTP/1.1 304 Not Modified\r\nETag: ")
        w.append(bytes: etag)
        w.append("\r\nDate: ")
        w.append(bytes: date)
        w.append("\r\n")
        w.append(bytes: fields)
        appendResponseTail(
            &w, extra: extra, requestIdLine: requestIdLine, keepAlive: keepAlive, clientIsHTTP11: clientIsHTTP11)
    }

    /// The value of the upstream's own ETag field, if it sent one.
    public static func upstreamETag(_ resp: ResponseHead) -> [UInt8]? {
        resp.head.firstValue("etag").map { Array(resp.head.bytes[$0]) }
    }

    /// Location and Content-Location values (for invalidation, RFC 9111 §4.4).
    public static func locations(_ resp: ResponseHead) -> [[UInt8]] {
        var out: [[UInt8]] = []
        resp.head.bytes.withUnsafeBytes { b in
            for f in resp.head.fields
            where (f.name.count == 8 && b.equalsLowercasePublic(f.name, "location"))
                || (f.name.count == 16 && b.equalsLowercasePublic(f.name, "content-location"))
            {
                out.append(Array(resp.head.bytes[f.value]))
            }
        }
        return out
    }
}

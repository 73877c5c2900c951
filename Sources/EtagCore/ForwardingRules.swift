import EtagHTTP

/// What a forwarded message keeps, drops and gains (RFC 9110 §7.6). Pure: heads in, bytes out.
public struct ForwardingRules: Sendable {
    let via: [UInt8]
    let upstreamAuthority: [UInt8]
    let basePath: [UInt8]
    let preserveHost: Bool

    public init(config: ProxyConfig) {
        via = Array("1.1 \(config.forwarding.via)".utf8)
        upstreamAuthority = Array(config.upstream.authority.utf8)
        basePath = Array(config.upstream.basePath.utf8)
        preserveHost = config.forwarding.preserveHost
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
    public func upstreamRequestHead(_ req: RequestHead, clientIP: [UInt8]) -> [UInt8] {
        let block = req.head
        var w = ByteWriter(capacity: block.bytes.count + 160)
        w.append(block.bytes, req.methodRange)
        w.append(" ")
        w.append(bytes: basePath)
        if req.pathRange.isEmpty {
            w.append("/")
        } else if block.bytes[req.pathRange.lowerBound] == UInt8(ascii: "?") {
            w.append("/")
            w.append(block.bytes, req.pathRange)
        } else {
            w.append(block.bytes, req.pathRange)
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
                w.field(from: block, f)
            }
        }
        switch req.framing {
        case .length(let n):
            w.append("Content-Length: ")
            w.append(decimal: n)
            w.append("\r\n")
        case .chunked:
            w.append("Transfer-Encoding: chunked\r\n")
        case .none:
            // RFC 9110 §8.6: a request that normally has content says so even when it is empty.
            if req.method == .post || req.method == .put || req.method == .patch {
                w.append("Content-Length: 0\r\n")
            }
        }
        // X-Forwarded-For: earlier hops, then this client (one combined field).
        w.append("X-Forwarded-For: ")
        for r in xff {
            w.append(block.bytes, r)
            w.append(", ")
        }
        w.append(bytes: clientIP)
        w.append("\r\nX-Forwarded-Proto: http\r\n")
        if let h = req.hostRange {
            w.append("X-Forwarded-Host: ")
            w.append(block.bytes, h)
            w.append("\r\n")
        }
        w.append("Via: ")
        w.append(bytes: via)
        w.append("\r\n\r\n")
        return w.bytes
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
    ///   - passLength: keep the upstream's Content-Length (a HEAD response, where it describes the GET body).
    public func clientResponseHead(
        _ resp: ResponseHead, framing: ClientFraming, keepAlive: Bool, clientIsHTTP11: Bool, date: [UInt8],
        passLength: Bool = false, extra: [UInt8] = []
    ) -> [UInt8] {
        let block = resp.head
        var w = ByteWriter(capacity: block.bytes.count + 128 + extra.count)
        w.append("HTTP/1.1 ")
        w.append(block.bytes, resp.statusTextRange)
        w.append("\r\n")
        var sawDate = false
        block.bytes.withUnsafeBytes { b in
            for f in block.fields {
                if Self.droppedFromResponse(b, f.name) {
                    if passLength, f.name.count == 14, b.equalsLowercasePublic(f.name, "content-length") {
                        w.field(from: block, f)
                    }
                    continue
                }
                if Self.namedBy(resp.connectionOptions, b, f.name) { continue }
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
            w.append("Content-Length: ")
            w.append(decimal: n)
            w.append("\r\n")
        case .chunked:
            w.append("Transfer-Encoding: chunked\r\n")
        case .none, .untilClose:
            break
        }
        w.append("Via: ")
        w.append(bytes: via)
        w.append("\r\n")
        w.append(bytes: extra)
        if !keepAlive {
            w.append("Connection: close\r\n")
        } else if !clientIsHTTP11 {
            w.append("Connection: keep-alive\r\n")
        }
        w.append("\r\n")
        return w.bytes
    }
}

import EtagHTTP
import Testing
@testable import EtagCore

/// What a forwarded message keeps, drops and gains (RFC 9110 §7.6), table-tested on heads parsed from text.
@Suite("Forwarding rules: the upstream request head, the fetch head, the client response head, the 304 head")
struct ForwardingRulesTests {
    static func rules(base: String = "", preserveHost: Bool = false, dropUnderscores: Bool = true) -> ForwardingRules {
        var c = ProxyConfig()
        c.upstream = UpstreamURL(host: "api", port: 9000, basePath: base)
        c.forwarding.preserveHost = preserveHost
        c.forwarding.dropUnderscoreFields = dropUnderscores
        return ForwardingRules(config: c)
    }

    static func request(_ text: String) throws -> RequestHead {
        let bytes = Array(text.utf8)
        let result = try bytes.withUnsafeBytes { try RequestParser.parse($0, limits: HTTPLimits()) }
        guard case .complete(let head, _) = result else { throw HTTPParseError(400, "incomplete") }
        return head
    }

    static func response(_ text: String, to method: HTTPMethod = .get) throws -> ResponseHead {
        let bytes = Array(text.utf8)
        let result = try bytes.withUnsafeBytes {
            try ResponseParser.parse($0, requestMethod: method, limits: HTTPLimits())
        }
        guard case .complete(let head, _) = result else { throw HTTPParseError(502, "incomplete") }
        return head
    }

    static func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
    }

    struct UpstreamCase {
        let request: String
        var base = ""
        var preserveHost = false
        var asGet = false
        var dropTags = false
        var dropDates = false
        let startLine: String
        var has: [String] = []
        var lacks: [String] = []
    }

    @Test func upstreamRequestHead() throws {
        let cases: [UpstreamCase] = [
            // Origin form, upstream authority as Host, the forwarding fields added.
            .init(
                request: "GET /p?q=1 HTTP/1.1\r\nHost: client.example\r\n\r\n", startLine: "GET /p?q=1 HTTP/1.1",
                has: [
                    "Host: api:9000", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-Proto: http",
                    "X-Forwarded-Host: client.example", "Via: 1.1 etag-proxy",
                ]),
            // The base path goes before the target; an absolute-form target is sent in origin form.
            .init(request: "GET /p HTTP/1.1\r\nHost: a\r\n\r\n", base: "/api", startLine: "GET /api/p HTTP/1.1"),
            .init(
                request: "GET http://m/p?x HTTP/1.1\r\nHost: m\r\n\r\n", base: "/api",
                startLine: "GET /api/p?x HTTP/1.1"),
            .init(request: "GET http://m HTTP/1.1\r\nHost: m\r\n\r\n", startLine: "GET / HTTP/1.1"),
            .init(
                request: "GET http://m:?b HTTP/1.1\r\nHost: m\r\n\r\n", base: "/api", startLine: "GET /api/?b HTTP/1.1"),
            .init(request: "GET http://m?b HTTP/1.1\r\nHost: m\r\n\r\n", startLine: "GET /?b HTTP/1.1"),
            // OPTIONS * asks about the server: never /base* (found by fuzzing the upstream head builder).
            .init(request: "OPTIONS * HTTP/1.1\r\nHost: m\r\n\r\n", base: "/api", startLine: "OPTIONS * HTTP/1.1"),
            // HTTP/1.0 clients are forwarded as HTTP/1.1; preserve_host keeps the client's Host.
            .init(
                request: "GET / HTTP/1.0\r\nHost: c\r\n\r\n", preserveHost: true, startLine: "GET / HTTP/1.1",
                has: ["Host: c"], lacks: ["Host: api:9000"]),
            // Hop-by-hop fields and those named by Connection are not forwarded (RFC 9110 §7.6.1).
            .init(
                request: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
                    + "TE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Keep: 2\r\n\r\n",
                startLine: "GET / HTTP/1.1", has: ["X-Keep: 2"],
                lacks: [
                    "X-Hop: 1", "Keep-Alive: 5", "TE: trailers", "Upgrade: h2c", "Proxy-Connection: x",
                    "Connection: close, X-Hop",
                ]),
            // An earlier X-Forwarded-For is extended by this client, in one field.
            .init(
                request: "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n", startLine: "GET / HTTP/1.1",
                has: ["X-Forwarded-For: 192.0.2.7, 10.0.0.1"]),
            // A HEAD is fetched as GET (its tag is the GET's); the proxy's tags are not the upstream's.
            .init(
                request: "HEAD / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\nIf-Modified-Since: y\r\n\r\n",
                asGet: true, dropTags: true, startLine: "GET / HTTP/1.1", has: ["If-Modified-Since: y"],
                lacks: ["If-None-Match: \"x\""]),
            .init(
                request: "GET / HTTP/1.1\r\nHost: a\r\nIf-Match: \"x\"\r\nIf-Unmodified-Since: y\r\n\r\n",
                dropTags: true, dropDates: true, startLine: "GET / HTTP/1.1",
                lacks: ["If-Match: \"x\"", "If-Unmodified-Since: y"]),
            // Framing: a length is kept, chunked stays chunked, an empty PUT says Content-Length: 0 (RFC 9110 §8.6).
            .init(
                request: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", startLine: "POST /p HTTP/1.1",
                has: ["Content-Length: 3"]),
            .init(
                request: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                startLine: "POST /p HTTP/1.1", has: ["Transfer-Encoding: chunked"], lacks: ["Content-Length: 0"]),
            .init(
                request: "PUT /p HTTP/1.1\r\nHost: a\r\n\r\n", startLine: "PUT /p HTTP/1.1", has: ["Content-Length: 0"]),
            .init(
                request: "GET /p HTTP/1.1\r\nHost: a\r\n\r\n", startLine: "GET /p HTTP/1.1",
                lacks: ["Content-Length: 0"]),
        ]
        for c in cases {
            let head = try Self.request(c.request)
            let out = Self.rules(base: c.base, preserveHost: c.preserveHost).upstreamRequestHead(
                head, clientIP: Array("10.0.0.1".utf8), asGet: c.asGet, dropTagConditions: c.dropTags,
                dropDateConditions: c.dropDates)
            let lines = Self.lines(out)
            #expect(lines.first == c.startLine, "\(c.request)")
            for h in c.has { #expect(lines.contains(h), "\(c.request) should send \(h): \(lines)") }
            for h in c.lacks { #expect(!lines.contains(h), "\(c.request) should not send \(h): \(lines)") }
            #expect(String(decoding: out.suffix(4), as: UTF8.self) == "\r\n\r\n")
        }
    }

    @Test func fieldsWithUnderscoresAreDroppedUnlessAllowed() throws {
        let head = try Self.request(
            "POST /p HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nX_Api_Key: k\r\nX-Ok: 1\r\n"
                + "Content-Length: 0\r\n\r\n")
        let ip = Array("10.0.0.1".utf8)
        let dropped = Self.lines(Self.rules().upstreamRequestHead(head, clientIP: ip))
        #expect(!dropped.contains("Transfer_Encoding: chunked") && !dropped.contains("X_Api_Key: k"))
        #expect(dropped.contains("X-Ok: 1"))
        let kept = Self.lines(Self.rules(dropUnderscores: false).upstreamRequestHead(head, clientIP: ip))
        #expect(kept.contains("X_Api_Key: k"))
    }

    @Test func theFetchHeadSeesWhatTheClientSaw() throws {
        let head = try Self.request(
            "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nAccept: application/json\r\n"
                + "Cookie: s=1\r\nIf-Match: \"x\"\r\nContent-Length: 2\r\nX-Other: y\r\n\r\n")
        let lines = Self.lines(Self.rules(base: "/api").fetchHead(head, clientIP: Array("10.0.0.1".utf8)))
        #expect(lines.first == "GET /api/persons/1 HTTP/1.1")
        for h in ["Authorization: Bearer t", "Accept: application/json", "Cookie: s=1", "Host: api:9000"] {
            #expect(lines.contains(h))
        }
        for h in ["If-Match: \"x\"", "Content-Length: 2", "X-Other: y"] { #expect(!lines.contains(h)) }
        let refetch = Self.lines(
            Self.rules().fetchHead(head, clientIP: Array("10.0.0.1".utf8), path: Array("/persons/2".utf8)))
        #expect(refetch.first == "GET /persons/2 HTTP/1.1")
    }

    @Test func clientFraming() throws {
        let cases: [(String, Bool, ForwardingRules.ClientFraming)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, .length(5)),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, .chunked),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, .untilClose),
            ("HTTP/1.1 200 OK\r\n\r\n", true, .chunked),
            ("HTTP/1.1 200 OK\r\n\r\n", false, .untilClose),
            ("HTTP/1.1 204 No Content\r\n\r\n", true, .none),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", true, .none),
        ]
        for (text, http11, expected) in cases {
            let resp = try Self.response(text)
            #expect(ForwardingRules.clientFraming(for: resp, clientIsHTTP11: http11) == expected, "\(text)")
        }
    }

    @Test func clientResponseHead() throws {
        let resp = try Self.response(
            "HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nETag: \"theirs\"\r\n"
                + "Content-Length: 5\r\nX-Keep: 2\r\n\r\n")
        let lines = Self.lines(
            Self.rules().clientResponseHead(
                resp, framing: .chunked, keepAlive: true, clientIsHTTP11: true, date: Array("D".utf8),
                dropETag: true, etag: Array("\"ours\"".utf8)))
        #expect(lines.first == "HTTP/1.1 200 OK")
        for h in ["X-Keep: 2", "Transfer-Encoding: chunked", "ETag: \"ours\"", "Date: D", "Via: 1.1 etag-proxy"] {
            #expect(lines.contains(h), "\(h): \(lines)")
        }
        for h in ["X-Hop: 1", "Keep-Alive: timeout=5", "ETag: \"theirs\"", "Content-Length: 5"] {
            #expect(!lines.contains(h), "\(h): \(lines)")
        }
        let closing = Self.lines(
            Self.rules().clientResponseHead(
                resp, framing: .length(5), keepAlive: false, clientIsHTTP11: true, date: Array("D".utf8)))
        #expect(closing.contains("Connection: close"))
        #expect(closing.contains("Content-Length: 5"))
        #expect(closing.contains("ETag: \"theirs\""), "kept unless dropped")
    }

    @Test func theNotModifiedHeadRepeatsTheValidatorFields() throws {
        // RFC 9110 §15.4.5: a 304 repeats Cache-Control, Content-Location, Expires and Vary of its 200.
        let resp = try Self.response(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Type: application/json\r\nVary: Accept\r\n"
                + "Expires: x\r\nContent-Location: /p/1\r\nContent-Length: 0\r\n\r\n")
        let fields = ForwardingRules.notModifiedFields(resp)
        #expect(
            Self.lines(fields) == ["Cache-Control: max-age=5", "Vary: Accept", "Expires: x", "Content-Location: /p/1"])
        let head = Self.lines(
            Self.rules().notModifiedHead(
                etag: Array("\"t\"".utf8), date: Array("D".utf8), fields: fields, extra: [], keepAlive: true,
                clientIsHTTP11: true))
        #expect(head.first == "HTTP/1.1 304 Not Modified")
        #expect(
            head.contains("ETag: \"t\"") && head.contains("Vary: Accept")
                && !head.contains("Content-Type: application/json"))
        #expect(ForwardingRules.locations(resp) == [Array("/p/1".utf8)])
        #expect(ForwardingRules.upstreamETag(resp) == nil)
    }
}

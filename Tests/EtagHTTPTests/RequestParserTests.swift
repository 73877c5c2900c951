import Testing
@testable import EtagHTTP

func parseRequest(_ s: String, limits: HTTPLimits = HTTPLimits()) throws(HTTPParseError) -> HeadParseResult<RequestHead>
{
    let bytes = Array(s.utf8)
    let r = bytes.withUnsafeBytes { b -> Result<HeadParseResult<RequestHead>, HTTPParseError> in
        do throws(HTTPParseError) { return .success(try RequestParser.parse(b, limits: limits)) } catch {
            return .failure(error)
        }
    }
    return try r.get()
}

func head(_ s: String) throws -> RequestHead {
    guard case .complete(let h, _) = try parseRequest(s) else { throw HTTPParseError(0, "incomplete") }
    return h
}

func status(_ s: String, limits: HTTPLimits = HTTPLimits()) -> Int? {
    do {
        _ = try parseRequest(s, limits: limits)
        return nil
    } catch {
        return error.status
    }
}

@Suite("Request head parsing (RFC 9112 §2–§6)")
struct RequestParserTests {
    @Test func simpleGet() throws {
        let h = try head("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
        #expect(h.method == .get)
        #expect(h.targetString == "/a?b=1")
        #expect(h.hostString == "example.com")
        #expect(h.isHTTP11)
        #expect(h.keepAlive)
        #expect(h.framing == .none)
        #expect(h.head.fields.count == 2)
    }

    @Test func incompleteHeadAsksForMore() throws {
        guard case .incomplete = try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n") else {
            Issue.record("expected incomplete")
            return
        }
    }

    @Test func consumedCountsOnlyTheHead() throws {
        guard case .complete(_, let used) = try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next") else {
            Issue.record("expected complete")
            return
        }
        #expect(used == 27)
    }

    @Test func leadingEmptyLinesAreIgnored() throws {
        #expect(try head("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").method == .get)
    }

    @Test func bareLFLineEndsAreAccepted() throws {
        let h = try head("GET / HTTP/1.1\nHost: a\nX: y\n\n")
        #expect(h.head.fields.count == 2)
    }

    @Test func valuesAreTrimmed() throws {
        let h = try head("GET / HTTP/1.1\r\nHost:   a  \r\nX-E:\r\n\r\n")
        #expect(h.hostString == "a")
        #expect(h.head.string(h.head.fields[1].value) == "")
    }

    @Test func framing() throws {
        #expect(try head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").framing == .length(12))
        #expect(try head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing == .none)
        #expect(try head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n").framing == .length(7))
        #expect(try head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").framing == .chunked)
    }

    @Test func persistence() throws {
        #expect(try head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive == false)
        #expect(try head("GET / HTTP/1.0\r\n\r\n").keepAlive == false)
        #expect(try head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive == true)
        let h = try head("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a, close, x-b\r\n\r\n")
        #expect(h.connectionOptions.map { h.head.string($0) } == ["x-a", "x-b"])
    }

    @Test func expectContinue() throws {
        #expect(
            try head("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expectContinue)
        #expect(status("PUT / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n") == 417)
    }

    @Test func targetForms() throws {
        let abs = try head("GET http://h.example:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n")
        #expect(abs.hostString == "h.example:81")
        #expect(abs.head.string(abs.pathRange) == "/p?q")
        #expect(try head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").method == .options)
        #expect(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
        #expect(status("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n") == 405)
        #expect(status("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
    }

    @Test(arguments: [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
        "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nX(y): a\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        "GET / HTTP/1.x\r\nHost: a\r\n\r\n",
        "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        // A line that starts with a bare CR does not end the head (the fields after it would be smuggled).
        "POST /p HTTP/1.1\r\nHost: a\r\n\rContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\rTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\n\rX: 1\r\nHost: a\r\n\r\n",
        // Dot-segments (RFC 3986 §5.2.4), also percent-encoded, anywhere in the path.
        "GET /../echo HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /%2e%2e/echo HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /%2E./echo HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a/..?x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://h/a/%2e HTTP/1.1\r\nHost: h\r\n\r\n",
        // Singleton fields repeated (RFC 9110 §5.3: not lists).
        "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nAuthorization: Bearer y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nauthorization: a\r\nAUTHORIZATION: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: a\r\nProxy-Authorization: b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 0\r\n\r\n",
    ])
    func rejectedWith400(_ raw: String) {
        #expect(status(raw) == 400, "\(raw.debugDescription)")
    }

    @Test func dotsThatAreNotSegmentsAreFine() throws {
        for path in ["/a.json", "/.well-known/x", "/a/...", "/a/..b", "/a/%2e%2e%2e", "/a/%2ex", "/a?x=/../", "/a/%2"] {
            #expect(status("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n") == nil, "\(path)")
        }
    }

    @Test func unsupportedVersionAndCodings() {
        #expect(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505)
        #expect(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501)
    }

    @Test func limits() {
        let small = HTTPLimits(maxHeadSize: 64, maxHeaderCount: 2)
        #expect(
            status("GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "a", count: 100))\r\n\r\n", limits: small)
                == 431)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "a", count: 100))", limits: small) == 431)
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits: small) == 431)
    }

    @Test func methodsAreCaseSensitive() throws {
        #expect(try head("get / HTTP/1.1\r\nHost: a\r\n\r\n").method == .other)
        #expect(try head("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n").method == .patch)
        #expect(HTTPMethod.put.isIdempotent && !HTTPMethod.post.isIdempotent && HTTPMethod.head.isSafe)
    }

    /// Field values are checked eight bytes at a time: a control character or DEL at any offset of a long value
    /// is still refused, and HTAB and obs-text are still allowed (RFC 9110 §5.5).
    @Test func everyValueByteIsChecked() throws {
        let base = Array("abcdefghijklmnopqrstuvwxyz0123".utf8)
        for bad: UInt8 in [0x00, 0x01, 0x0B, 0x0D, 0x1F, 0x7F] {
            for at in 0..<base.count {
                var v = base
                v[at] = bad
                let raw = Array("GET / HTTP/1.1\r\nHost: a\r\nX: ".utf8) + v + Array("\r\n\r\n".utf8)
                let r = raw.withUnsafeBytes { b -> Int? in
                    do throws(HTTPParseError) {
                        _ = try RequestParser.parse(b, limits: HTTPLimits())
                        return nil
                    } catch {
                        return error.status
                    }
                }
                #expect(r == 400, "byte \(bad) at \(at)")
            }
        }
        let ok =
            Array("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb ".utf8) + [0x80, 0xC3, 0xA9, 0xFF]
            + Array("0123456789\r\n\r\n".utf8)
        let h = try ok.withUnsafeBytes { b -> RequestHead in
            guard case .complete(let h, _) = try RequestParser.parse(b, limits: HTTPLimits()) else {
                throw HTTPParseError(0, "")
            }
            return h
        }
        #expect(h.head.firstValue("x").map { h.head.bytes[$0].count } == 18)
    }
}

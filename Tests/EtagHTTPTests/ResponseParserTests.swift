import Testing
@testable import EtagHTTP

func parseResponse(_ s: String, method: HTTPMethod = .get) -> Result<ResponseHead, HTTPParseError> {
    let bytes = Array(s.utf8)
    return bytes.withUnsafeBytes { b in
        do throws(HTTPParseError) {
            guard case .complete(let h, _) = try ResponseParser.parse(b, requestMethod: method, limits: HTTPLimits())
            else { return .failure(HTTPParseError(0, "incomplete")) }
            return .success(h)
        } catch {
            return .failure(error)
        }
    }
}

@Suite("Response head parsing and body framing (RFC 9112 §4, §6.3)")
struct ResponseParserTests {
    func framing(_ s: String, method: HTTPMethod = .get) -> ResponseFraming? {
        try? parseResponse(s, method: method).get().framing
    }

    @Test func framingRules() {
        #expect(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") == .length(5))
        #expect(framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == .length(0))
        // RFC 9112 §6.3 item 3: both framings at once is handled as an error (502), as nginx does.
        #expect(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") == nil)
        #expect(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n") == nil)
        #expect(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n") == .untilClose)
        #expect(framing("HTTP/1.1 200 OK\r\n\r\n") == .untilClose)
        #expect(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method: .head) == ResponseFraming.none)
        #expect(framing("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n") == ResponseFraming.none)
        #expect(framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n") == ResponseFraming.none)
        #expect(framing("HTTP/1.1 100 Continue\r\n\r\n") == ResponseFraming.none)
    }

    @Test func statusAndPersistence() throws {
        let r = try parseResponse("HTTP/1.0 404 Not Found\r\nContent-Length: 1\r\n\r\n").get()
        #expect(r.status == 404)
        #expect(!r.keepAlive)
        let k = try parseResponse("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n").get()
        #expect(k.keepAlive)
        #expect(k.head.string(k.statusTextRange) == "200")
        #expect(try parseResponse("HTTP/1.1 100 Continue\r\n\r\n").get().isInterim)
        #expect(try !parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").get().keepAlive)
    }

    @Test(arguments: [
        "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n", "HTTP/1.1 200 OK\r\nX: y\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\rContent-Length: 5\r\n\r\n",
    ])
    func malformedIs502(_ raw: String) {
        guard case .failure(let e) = parseResponse(raw) else {
            Issue.record("accepted \(raw.debugDescription)")
            return
        }
        #expect(e.status == 502)
    }
}

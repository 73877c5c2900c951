import Foundation
import Testing
import TestSupport

@Suite("Chunked bodies both ways, close-delimited responses, a 3 MiB body intact (RFC 9112 §6, §7)")
struct ChunkedAndLargeBodyTests {
    static func pattern(_ n: Int) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
    }

    @Test func chunkedRequestBodyReachesTheUpstreamIntact() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send(
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.bodyText == "hello world")
        let seen = try #require(up.requests.first)
        #expect(seen.header("Transfer-Encoding") == "chunked")
        #expect(seen.bodyText == "hello world")
    }

    // Bodies above etag.max_body (here: all) are streamed as they arrive, so the relay framing shows.
    @Test func chunkedResponseIsRelayedChunkedToHTTP11AndCloseDelimitedToHTTP10() throws {
        let up = try TestUpstream { _ in
            .chunked(
                status: 200, headers: [("Content-Type", "text/plain")], chunks: [Array("abc".utf8), Array("defg".utf8)])
        }
        let proxy = try ProxyHarness(upstream: up) { $0.etag.maxBody = 0 }
        defer { proxy.stop() }
        let r = try proxy.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.header("Transfer-Encoding") == "chunked")
        #expect(r.bodyText == "abcdefg")
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /x HTTP/1.0\r\n\r\n")
        let head = try #require(c.reader.readHead())
        let text = String(decoding: head, as: UTF8.self)
        #expect(!text.lowercased().contains("transfer-encoding"))
        #expect(String(decoding: c.reader.readToEnd(), as: UTF8.self) == "abcdefg")
    }

    @Test func closeDelimitedUpstreamResponseBecomesChunked() throws {
        let up = try TestUpstream { _ in
            .raw(Array("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".utf8), close: true)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.etag.maxBody = 0 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.header("Transfer-Encoding") == "chunked")
        #expect(r.bodyText == "until the end")
        c.send("GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.response()?.bodyText == "until the end", "the client connection stays usable")
    }

    @Test func threeMebibyteBodiesPassIntactBothWays() throws {
        let body = Self.pattern(3 * 1024 * 1024)
        let up = try TestUpstream()  // echoes the body
        let proxy = try ProxyHarness(upstream: up) { $0.limits.bufferSize = 64 * 1024 }
        defer { proxy.stop() }
        let c = try proxy.connect(timeout: 30)
        defer { c.close() }
        c.send(Array("PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let r = try #require(c.response())
        #expect(r.status == 200)
        #expect(r.body.count == body.count)
        #expect(r.body == body)
        #expect(up.requests.first?.body == body)
    }

    @Test func threeMebibyteChunkedUploadPassesIntact() throws {
        let body = Self.pattern(3 * 1024 * 1024 + 17)
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect(timeout: 30)
        defer { c.close() }
        var out = Array("POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var i = 0
        while i < body.count {
            let n = min(100_000, body.count - i)
            out += Array((String(n, radix: 16) + "\r\n").utf8) + body[i..<(i + n)] + [13, 10]
            i += n
        }
        out += Array("0\r\n\r\n".utf8)
        c.send(out)
        let r = try #require(c.response())
        #expect(r.body == body)
    }
}

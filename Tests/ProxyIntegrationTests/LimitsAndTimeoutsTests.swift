import Foundation
import Testing
import TestSupport

@Suite("Limits and client timeouts: 431, 413, 408 (RFC 9110 §15.5; RFC 6585 §5)", .serialized)
struct LimitsAndTimeoutsTests {
    @Test func headLargerThanTheLimitGets431() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.limits.maxHeaderSize = 1024 }
        defer { proxy.stop() }
        let r = try proxy.request("GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "x", count: 2000))\r\n\r\n")
        #expect(r.status == 431)
        #expect(r.header("Content-Type") == "application/problem+json")
        #expect(up.requests.isEmpty)
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }

    @Test func tooManyHeaderFieldsGets431() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.limits.maxHeaderCount = 10 }
        defer { proxy.stop() }
        let fields = (0..<20).map { "X-\($0): v\r\n" }.joined()
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\(fields)\r\n").status == 431)
    }

    @Test func declaredBodyLargerThanTheLimitGets413() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.limits.maxBodySize = 1000 }
        defer { proxy.stop() }
        let r = try proxy.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n")
        #expect(r.status == 413)
        #expect(up.requests.isEmpty)
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }

    @Test func chunkedBodyGrowingPastTheLimitGets413() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.limits.maxBodySize = 1000 }
        defer { proxy.stop() }
        let chunk = String(repeating: "y", count: 600)
        let r = try proxy.request(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n"
        )
        #expect(r.status == 413)
    }

    @Test func slowRequestHeadGets408AndClose() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.timeouts.clientHeader = 300 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET / HTTP/1.1\r\nHost: a\r\n")  // never finished
        let r = try #require(c.response())
        #expect(r.status == 408)
        #expect(c.isClosedByPeer())
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }

    @Test func slowRequestBodyGets408() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.timeouts.clientBody = 300 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        let r = try #require(c.response())
        #expect(r.status == 408)
        #expect(c.isClosedByPeer())
    }

    @Test func idleKeepAliveConnectionIsClosedSilently() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.timeouts.keepalive = 200 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.response()?.status == 200)
        #expect(c.isClosedByPeer())
        #expect(c.reader.buffer.isEmpty, "no 408 on an idle connection")
    }

    @Test func expectContinueGets100ThenTheResponse() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let interim = try #require(c.reader.readHead())
        #expect(String(decoding: interim, as: UTF8.self).hasPrefix("HTTP/1.1 100 Continue"))
        c.send("data")
        let r = try #require(c.response())
        #expect(r.bodyText == "data")
        #expect(up.requests.first?.header("Expect") == nil)
    }

    @Test func expectContinueWithOversizedBodyGets413Without100() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.limits.maxBodySize = 10 }
        defer { proxy.stop() }
        let r = try proxy.request("PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 400\r\nExpect: 100-continue\r\n\r\n")
        #expect(r.status == 413)
    }
}

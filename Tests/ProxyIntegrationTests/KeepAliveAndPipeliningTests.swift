import Foundation
import Testing
import TestSupport

@Suite("Keep-alive on both sides and pipelining (RFC 9112 §9.3)")
struct KeepAliveAndPipeliningTests {
    @Test func clientAndUpstreamConnectionsAreReused() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        for i in 0..<5 {
            c.send("GET /n/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.response())
            #expect(r.status == 200)
            #expect(r.bodyText.contains("/n/\(i)"))
        }
        #expect(up.connections == 1)
        #expect(up.requests.count == 5)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let up = try TestUpstream { req in
            // The first answer is the slowest: order must still hold.
            let delay = req.target == "/p/0" ? 0.2 : 0
            return .delay(delay, TestUpstream.echo(req))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        var batch = ""
        for i in 0..<4 { batch += "GET /p/\(i) HTTP/1.1\r\nHost: a\r\n\r\n" }
        batch += "POST /p/4 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
        c.send(batch)
        for i in 0..<4 {
            let r = try #require(c.response())
            #expect(r.bodyText.contains("/p/\(i)"))
        }
        #expect(c.response()?.bodyText == "body")
    }

    @Test func http10ClientWithoutKeepAliveIsClosed() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /old HTTP/1.0\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.status == 200)
        #expect(r.startLine.hasPrefix("HTTP/1.1 200"))
        #expect(c.isClosedByPeer())
    }

    @Test func http10ClientWithKeepAliveStaysOpen() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.header("Connection")?.lowercased() == "keep-alive")
        c.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(c.response()?.bodyText.contains("/b") == true)
    }

    @Test func connectionCloseIsHonoured() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.header("Connection") == "close")
        #expect(c.isClosedByPeer())
    }
}

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

    /// Answers from the cache are held and sent together at the end of a loop iteration. Hundreds of pipelined
    /// conditional GETs in one read overflow what a worker holds (each 304 repeats a long Content-Location), so
    /// the answers go out partly held, partly at once: they must still come back complete and in order, and a
    /// final `Connection: close` must not overtake them — sent through io_uring and with one write each.
    @Test(arguments: [true, false])
    func pipelinedAnswersFromTheCacheStayInOrderWhenTheyOverflowWhatIsHeld(ioUring: Bool) throws {
        let location = "/archive/" + String(repeating: "x", count: 300)
        let up = try TestUpstream { req in
            .respond(status: 200, headers: [("Content-Location", location + req.target)], body: Array(req.target.utf8))
        }
        let proxy = try ProxyHarness(upstream: up) {
            $0.workers = 1
            $0.ioUring = ioUring
        }
        defer { proxy.stop() }
        let paths = (0..<8).map { "/q/\($0)" }
        var tags: [String: String] = [:]
        for p in paths {
            let tag = try #require(try proxy.request("GET \(p) HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
            tags[p] = tag
        }
        let count = 900
        let clients = try (0..<3).map { _ in try proxy.connect() }
        defer { clients.forEach { $0.close() } }
        for c in clients {
            var batch = ""
            for i in 0..<count {
                let p = paths[i % paths.count]
                let close = i == count - 1 ? "Connection: close\r\n" : ""
                batch += "GET \(p) HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tags[p]!)\r\n\(close)\r\n"
            }
            let (fd, bytes) = (c.fd, Array(batch.utf8))
            Thread { _ = Sockets.sendAll(fd, bytes) }.start()  // sent while the answers are read
        }
        for c in clients {
            for i in 0..<count {
                let p = paths[i % paths.count]
                let r = try #require(c.response(), "answer \(i) of \(count)")
                #expect(r.status == 304)
                #expect(r.header("ETag") == tags[p], "answer \(i) is for \(p)")
                #expect(r.header("Content-Location") == location + p)
            }
            #expect(c.isClosedByPeer())
        }
        #expect(up.requests.count == paths.count, "every conditional GET was answered from the cache")
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

import Foundation
import Testing
import TestSupport

@Suite("Forwarding: method, target, headers and body; hop-by-hop removed (RFC 9110 §7.6)")
struct ForwardingTests {
    @Test func requestIsForwardedWithRewrittenHeaders() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request(
            "POST /items?q=1 HTTP/1.1\r\nHost: api.example\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\n"
                + "X-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n"
                + "Proxy-Authorization: Basic eA==\r\nX-Forwarded-For: 10.0.0.1\r\nX-Custom: kept\r\n\r\nhello")
        #expect(r.status == 200)
        #expect(r.bodyText == "hello")
        let seen = try #require(up.requests.first)
        #expect(seen.method == "POST")
        #expect(seen.target == "/items?q=1")
        #expect(seen.startLine.hasSuffix("HTTP/1.1"))
        #expect(seen.header("Host") == "127.0.0.1:\(up.port)")
        #expect(seen.header("X-Forwarded-Host") == "api.example")
        #expect(seen.header("X-Forwarded-Proto") == "http")
        #expect(seen.header("X-Forwarded-For") == "10.0.0.1, 127.0.0.1")
        #expect(seen.header("Via") == "1.1 etag-proxy")
        #expect(seen.header("X-Custom") == "kept")
        #expect(seen.header("Content-Length") == "5")
        for hop in ["X-Hop", "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization", "Connection"] {
            #expect(seen.header(hop) == nil, "\(hop) must not be forwarded")
        }
    }

    @Test func responseHopByHopFieldsAreRemoved() throws {
        let up = try TestUpstream { _ in
            .respond(
                status: 201,
                headers: [
                    ("Connection", "X-Secret"), ("X-Secret", "1"), ("Keep-Alive", "timeout=1"),
                    ("Proxy-Authenticate", "Basic"), ("Trailer", "X-T"), ("Upgrade", "h2c"), ("X-App", "yes"),
                ], body: Array("created".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 201)
        #expect(r.bodyText == "created")
        #expect(r.header("X-App") == "yes")
        #expect(r.header("Via") == "1.1 etag-proxy")
        #expect(r.header("Date") != nil)
        for hop in ["X-Secret", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"] {
            #expect(r.header(hop) == nil, "\(hop) must not reach the client")
        }
    }

    @Test func headIsFetchedAsGetAndAnsweredWithoutBody() throws {
        let up = try TestUpstream { _ in
            .respond(
                status: 200, headers: [("Content-Type", "application/json")],
                body: [UInt8](repeating: 0x61, count: 1234))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /h HTTP/1.1\r\nHost: a\r\n\r\n")
        let head = try #require(c.response(head: true))
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "1234")
        // The next response on the same connection proves no body bytes followed the HEAD response.
        let get = try #require(c.response())
        #expect(get.body.count == 1234)
        #expect(head.header("ETag") != nil)
        #expect(head.header("ETag") == get.header("ETag"), "HEAD gets the ETag a GET would")
        #expect(up.requests.map(\.method) == ["GET", "GET"])
    }

    @Test func noContentAndNotModifiedHaveNoBody() throws {
        let up = try TestUpstream { req in
            req.target == "/204"
                ? .respond(status: 204, headers: [], body: [])
                : .raw(Array("HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n".utf8), close: false)
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n")
        let a = try #require(c.response())
        let b = try #require(c.response())
        #expect(a.status == 204)
        #expect(b.status == 304)
        #expect(b.header("ETag") == nil, "etag.upstream: replace drops the upstream's own tag")
        #expect(b.header("Content-Length") == nil)
    }

    @Test func emptyBodiesKeepTheirZeroLength() throws {
        let up = try TestUpstream { _ in .respond(status: 302, headers: [("Location", "/elsewhere")], body: []) }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect(timeout: 3)
        defer { c.close() }
        for _ in 0..<2 {
            c.send("GET /moved HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.response())
            #expect(r.status == 302)
            #expect(r.header("Content-Length") == "0")
        }
    }

    @Test func basePathAndAbsoluteFormTarget() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.upstream.basePath = "/v1" }
        defer { proxy.stop() }
        let r = try proxy.request("GET http://public.example/users?id=2 HTTP/1.1\r\nHost: ignored\r\n\r\n")
        #expect(r.status == 200)
        let seen = try #require(up.requests.first)
        #expect(seen.target == "/v1/users?id=2")
        #expect(seen.header("X-Forwarded-Host") == "public.example")
    }

    @Test func curlVerboseKeepsTheConnectionAlive() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let url = "http://127.0.0.1:\(proxy.port)/any/path?x=1"
        let r = try runCurl(["-v", url, url])
        #expect(r.status == 0)
        #expect(r.err.contains("Re-using existing connection"))
        #expect(r.out.components(separatedBy: "\"target\":\"/any/path?x=1\"").count == 3)
        #expect(up.connections == 1, "the upstream connection is pooled and reused")
    }
}

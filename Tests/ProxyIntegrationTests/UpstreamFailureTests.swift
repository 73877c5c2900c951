import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("Upstream failures: 502, 504, truncated bodies, stale pooled connections", .serialized)
struct UpstreamFailureTests {
    @Test func upstreamDownGives502ProblemJSON() throws {
        let up = try TestUpstream()
        let port = up.port
        up.stop()  // nothing listens on `port` any more
        let proxy = try ProxyHarness(upstream: up) { $0.upstream.port = port }
        defer { proxy.stop() }
        let r = try proxy.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 502)
        #expect(r.header("Content-Type") == "application/problem+json")
        #expect(r.bodyText.contains("\"title\":\"Bad Gateway\""))
        #expect(r.bodyText.contains("\"status\":502"))
        #expect(r.header("Connection") == nil, "an upstream failure does not cost the client its connection")
        let c = try proxy.connect()
        defer { c.close() }
        for _ in 0..<2 {
            c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.response()?.status == 502, "the proxy keeps serving after a failure")
        }
    }

    @Test func slowUpstreamGives504() throws {
        let up = try TestUpstream { req in .delay(1.5, TestUpstream.echo(req)) }
        let proxy = try ProxyHarness(upstream: up) { $0.timeouts.upstream = 300 }
        defer { proxy.stop() }
        let start = Date()
        let r = try proxy.request("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 504)
        #expect(Date().timeIntervalSince(start) < 1.4)
    }

    @Test func upstreamDyingMidBodyBeforeAnythingWasSentGives502() throws {
        // A body being buffered for its ETag has not reached the client: it gets a clean 502 instead.
        let up = try TestUpstream { _ in
            .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".utf8), close: true)
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 502)
    }

    @Test func upstreamDyingMidBodyClosesTheClientConnection() throws {
        let up = try TestUpstream { _ in
            .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".utf8), close: true)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.etag.maxBody = 50 }  // streamed, not buffered
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        let head = try #require(c.reader.readHead())
        #expect(String(decoding: head, as: UTF8.self).contains("Content-Length: 100"))
        let rest = c.reader.readToEnd()
        #expect(rest.count < 100, "the client sees the connection close before the announced length")
        #expect(c.reader.closed)
    }

    @Test func upstreamDyingMidChunkedBodyNeverSendsTheLastChunk() throws {
        let up = try TestUpstream { _ in
            .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8), close: true)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.etag.maxBody = 0 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = c.reader.readHead()
        let rest = String(decoding: c.reader.readToEnd(), as: UTF8.self)
        #expect(!rest.contains("0\r\n\r\n"))
    }

    /// RFC 9112 §6.3 item 8: a close-delimited body ends at the close, so a clean FIN after a cut would pass for
    /// the whole answer. The proxy resets the connection instead: the client's read fails with ECONNRESET.
    @Test func aCutCloseDelimitedAnswerEndsInAReset() throws {
        let up = try TestUpstream { _ in
            .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8), close: true)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.etag.maxBody = 0 }  // streamed, not held
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /cut HTTP/1.0\r\n\r\n")  // HTTP/1.0: the body goes to it close-delimited
        var buf = [UInt8](repeating: 0, count: 4096)
        var received: [UInt8] = []
        var error: Int32 = 0
        while true {
            let n = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received += buf[0..<n]
                continue
            }
            if n < 0 { error = errno }
            break
        }
        #expect(String(decoding: received, as: UTF8.self).contains("hello"), "what arrived was relayed")
        #expect(error == ECONNRESET, "a reset, not a clean end of the body")
    }

    @Test func malformedUpstreamResponseGives502() throws {
        let up = try TestUpstream { _ in .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".utf8), close: true) }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 502)
    }

    @Test func upstreamClosingWithoutAnswerGives502() throws {
        let up = try TestUpstream { _ in .close }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        #expect(try proxy.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx").status == 502)
    }

    @Test func closedPooledConnectionIsRetriedOnceForIdempotentRequests() throws {
        // Every upstream connection dies silently on its second request: the pooled connection the proxy reuses
        // for the second GET fails before any response byte, and the GET is retried once on a fresh connection.
        let up = try TestUpstream(dropRequestNumber: 2)
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        for i in 0..<3 {
            c.send("GET /r/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.response())
            #expect(r.status == 200)
            #expect(r.bodyText.contains("/r/\(i)"))
        }
        #expect(up.connections >= 2)
    }

    @Test func closedPooledConnectionIsNotRetriedForAPost() throws {
        let up = try TestUpstream(dropRequestNumber: 2)
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.response()?.status == 200)
        c.send("POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        #expect(c.response()?.status == 502, "a non-idempotent request is never replayed")
    }
}

import EtagCore
import Foundation
import Testing
import TestSupport

/// `concurrency.pipeline_refetch`: a checked PUT's re-fetch GET goes out in the same write as the PUT, on its
/// connection (RFC 9112 §9.3.2), and its answer tags the write. An answer nobody wants never reaches another
/// exchange.
@Suite("Pipelined re-fetch: the GET rides behind the PUT, an unwanted answer is dropped with its connection")
struct PipelinedRefetchTests {
    static let old = "{\"name\":\"Ada\"}"
    static let new = "{\"name\":\"Bob\"}"

    func put(_ proxy: ProxyHarness, _ tag: String, _ body: String = PipelinedRefetchTests.new) throws -> HTTPMessage {
        try proxy.request(
            "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
    }

    func tag(_ proxy: ProxyHarness) throws -> String {
        try #require(try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
    }

    @Test func theRefetchRidesBehindThePutAndTagsTheNewState() throws {
        let store = RecordingStore(["/persons/1": Self.old])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        // One worker: each request below is a new client connection, and a second worker has a pool of its own.
        let proxy = try ProxyHarness(upstream: up) {
            $0.concurrency.pipelineRefetch = true
            $0.workers = 1
        }
        defer { proxy.stop() }
        let r = try put(proxy, try tag(proxy))
        #expect(r.status == 200)
        #expect(r.header("ETag") == (try expectedETag(Array(Self.new.utf8))))
        #expect(r.bodyText == Self.new, "the write's own answer, not the GET's")
        // pre-fetch GET, PUT, then the GET sent before the PUT's answer, on the PUT's connection.
        let methods = up.requests.suffix(3).map(\.method)
        let arrivals = up.arrivals.suffix(3)
        #expect(methods == ["GET", "PUT", "GET"])
        #expect(arrivals.map(\.pipelined) == [false, false, true])
        #expect(Set(arrivals.suffix(2).map(\.connection)).count == 1)
        #expect(proxy.server.counter(.refetchesPipelined) == 1)
        // The tag is the next GET's, and the connection went back to the pool after the GET's answer.
        let connections = up.connections
        let next = try tag(proxy)
        #expect(next == r.header("ETag"))
        #expect(up.connections == connections)
        #expect(try put(proxy, next, "{\"name\":\"Cy\"}").status == 200)
    }

    @Test func offByDefault() throws {
        let store = RecordingStore(["/persons/1": Self.old])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try put(proxy, try tag(proxy))
        #expect(r.header("ETag") == (try expectedETag(Array(Self.new.utf8))))
        #expect(up.requests.suffix(3).map(\.method) == ["GET", "PUT", "GET"])
        #expect(!up.arrivals.contains { $0.pipelined }, "no GET before the PUT's answer")
        #expect(proxy.server.counter(.refetchesPipelined) == 0)
    }

    @Test func theAnswerToARefetchNobodyWantsNeverReachesAnotherExchange() throws {
        // The PUT fails: no re-fetch is wanted, yet the upstream answers the pipelined GET.
        let up = try TestUpstream { req in
            if req.method == "PUT" {
                return .respond(status: 409, headers: [], body: Array("{\"error\":\"conflict\"}".utf8))
            }
            return .respond(status: 200, headers: [], body: Array("{\"target\":\"\(req.target)\"}".utf8))
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstream: up) { $0.concurrency.pipelineRefetch = true }
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        let current = try #require(c.response()?.header("ETag"))
        let body = Self.new
        c.send(
            "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(current)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
        let failed = try #require(c.response())
        #expect(failed.status == 409)
        #expect(failed.header("ETag") == nil)
        #expect(failed.bodyText == "{\"error\":\"conflict\"}")
        // Every later exchange gets its own answer, on a fresh upstream connection.
        for path in ["/other/2", "/persons/1", "/other/3"] {
            c.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.response()?.bodyText == "{\"target\":\"\(path)\"}")
        }
        #expect(up.arrivals.contains { $0.pipelined }, "the GET was sent behind the PUT")
        #expect(proxy.server.counter(.refetchesPipelined) == 0)
    }

    /// An upstream that answers a PUT with `answer` and then closes the connection; GETs from the store.
    func closingAfterPut(_ answer: String) throws -> (TestUpstream, ProxyHarness) {
        let store = RecordingStore(["/persons/1": Self.old])
        let up = try TestUpstream { req in
            guard req.method == "PUT" else { return store.handle(req) }
            _ = store.handle(req)
            return .raw(Array(answer.utf8), close: true)
        }
        return (up, try ProxyHarness(upstream: up) { $0.concurrency.pipelineRefetch = true })
    }

    @Test func aPutAnsweredWithConnectionCloseIsRefetchedOnAFreshConnection() throws {
        let (up, proxy) = try closingAfterPut("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        defer { up.stop() }
        defer { proxy.stop() }
        let r = try put(proxy, try tag(proxy))
        #expect(r.status == 204)
        #expect(r.header("ETag") == (try expectedETag(Array(Self.new.utf8))))
        #expect(proxy.server.counter(.refetchesPipelined) == 0)
        let last = try #require(up.arrivals.last)
        #expect(!last.pipelined && up.requests.last?.method == "GET")
    }

    @Test func aConnectionThatDiesBeforeThePipelinedAnswerIsReplayedOnce() throws {
        // The upstream closes after the PUT's answer without saying so: the taken GET hears nothing, and is
        // replayed on a fresh connection (a GET is idempotent, RFC 9110 §9.2.2).
        let (up, proxy) = try closingAfterPut("HTTP/1.1 204 No Content\r\n\r\n")
        defer { up.stop() }
        defer { proxy.stop() }
        let r = try put(proxy, try tag(proxy))
        #expect(r.status == 204)
        #expect(r.header("ETag") == (try expectedETag(Array(Self.new.utf8))))
        #expect(proxy.server.counter(.refetchesPipelined) == 1)
        #expect(up.requests.last?.method == "GET")
    }
}

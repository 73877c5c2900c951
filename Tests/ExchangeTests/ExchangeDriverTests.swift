import EtagCore
import Testing
import TestSupport
@testable import EtagServer

/// Exchange behaviour driven in-process (`ExchangeDriver`): the same code paths as over sockets, with the upstream
/// scripted per test. The socket tests (ProxyIntegrationTests) stay the end-to-end layer.
@Suite("Exchanges without sockets")
struct ExchangeDriverTests {
    static let body = Array("{\"id\":1,\"name\":\"Ada\"}".utf8)

    /// A resource store as the upstream: GET answers the current body, PUT replaces it.
    final class Store {
        var body = ExchangeDriverTests.body
        var puts = 0
        func handle(_ req: HTTPMessage) -> ExchangeDriver.Reply {
            switch req.method {
            case "PUT":
                puts += 1
                body = req.body
                return .respond(204, [], [])
            default:
                return .respond(200, [("Content-Type", "application/json")], body)
            }
        }
    }

    @Test func aGetIsTaggedAndARevalidationIsAnsweredFromTheCache() throws {
        let d = try ExchangeDriver()
        defer { d.shutdown() }
        let c = d.connect()
        let r = try #require(c.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(r.status == 200)
        let tag = try expectedETag(r.body)
        #expect(r.header("etag") == tag)
        #expect(d.upstreamRequests.count == 1)
        let r2 = try #require(c.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n"))
        #expect(r2.status == 304)
        #expect(r2.header("etag") == tag)
        #expect(d.upstreamRequests.count == 1, "a fresh entry answers without asking the upstream")
        #expect(d.metrics.value(.notModifiedFromCache) == 1)
    }

    @Test func aHeadGetsTheTagOfTheGetAndNoBody() throws {
        let d = try ExchangeDriver()
        defer { d.shutdown() }
        let c = d.connect()
        let r = try #require(c.request("HEAD /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n", head: true))
        #expect(r.status == 200)
        #expect(d.upstreamRequests.first?.method == "GET", "HEAD is asked as GET, to hash the body")
        let echoed = ExchangeDriver.echo(d.upstreamRequests[0])
        guard case .respond(_, _, let body) = echoed else { return }
        #expect(r.header("etag") == (try expectedETag(body)))
        #expect(c.unparsed.isEmpty, "no body after the head")
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let d = try ExchangeDriver()
        defer { d.shutdown() }
        let c = d.connect()
        c.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n")
        let bodies = (0..<3).compactMap { _ in c.response()?.bodyText }
        #expect(bodies.count == 3)
        #expect(bodies.map { $0.contains("\"target\":\"/a\"") } == [true, false, false])
        #expect(bodies[1].contains("/b") && bodies[2].contains("/c"))
    }

    @Test func aStaleIfMatchIsRefusedWithTheCurrentTagAndTheWriteNeverSent() throws {
        let store = Store()
        let d = try ExchangeDriver(handler: store.handle)
        defer { d.shutdown() }
        let c = d.connect()
        let stale = "\"0000000000000000000000000000000000000000\""
        let r = try #require(
            c.request("PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(stale)\r\nContent-Length: 2\r\n\r\n{}"))
        #expect(r.status == 412)
        #expect(r.header("etag") == (try expectedETag(ExchangeDriverTests.body)))
        #expect(r.header("content-type") == "application/problem+json")
        #expect(store.puts == 0)
        #expect(d.upstreamRequests.map(\.method) == ["GET"], "only the pre-fetch")
    }

    @Test func aMatchingIfMatchWritesAndAnswersWithTheNewTag() throws {
        let store = Store()
        let d = try ExchangeDriver(handler: store.handle)
        defer { d.shutdown() }
        let c = d.connect()
        let tag = try expectedETag(ExchangeDriverTests.body)
        let new = "{\"id\":1,\"name\":\"Grace\"}"
        let r = try #require(
            c.request(
                "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: \(new.utf8.count)\r\n\r\n\(new)"
            ))
        #expect(r.status == 204)
        #expect(r.header("etag") == (try expectedETag(Array(new.utf8))))
        #expect(d.upstreamRequests.map(\.method) == ["GET", "PUT", "GET"], "pre-fetch, write, re-fetch")
        #expect(store.puts == 1)
    }

    @Test func optionsAndTraceAreSafeNoRefetchNoTagNoInvalidation() throws {
        let d = try ExchangeDriver()
        defer { d.shutdown() }
        let c = d.connect()
        let tag = try #require(c.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")?.header("etag"))
        for method in ["OPTIONS", "TRACE"] {
            let r = try #require(c.request("\(method) /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n"))
            #expect(r.status == 200)
            #expect(r.header("etag") == nil, "\(method) gets no re-fetched tag")
        }
        #expect(d.upstreamRequests.map(\.method) == ["GET", "OPTIONS", "TRACE"], "no re-fetch GET")
        let again = c.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(again?.status == 304)
        #expect(d.upstreamRequests.count == 3, "the stored tag was not invalidated")
    }

    @Test func aMalformedTagListNeverYieldsA304OrAWrite() throws {
        let store = Store()
        let d = try ExchangeDriver(handler: store.handle)
        defer { d.shutdown() }
        let c = d.connect()
        let tag = try #require(c.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")?.header("etag"))
        for bad in ["\(tag)x", "\(tag) x", "\(tag)junk, \"z\"", String(tag.dropLast())] {
            let r = c.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(bad)\r\n\r\n")
            #expect(r?.status == 200, "If-None-Match: \(bad)")
            let w = c.request("PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(bad)\r\nContent-Length: 2\r\n\r\n{}")
            #expect(w?.status == 412, "If-Match: \(bad)")
            #expect(w?.header("etag") == tag)
        }
        #expect(store.puts == 0, "no write got through")
    }

    @Test func aWriteWithoutIfMatchGets428WhenRequired() throws {
        let store = Store()
        let d = try ExchangeDriver({ $0.concurrency.enforceIfMatch = true }, handler: store.handle)
        defer { d.shutdown() }
        let c = d.connect()
        let r = try #require(c.request("DELETE /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(r.status == 428)
        #expect(d.upstreamRequests.isEmpty)
    }

    @Test func twoWritersWithOneTagOneWins() throws {
        let store = Store()
        let d = try ExchangeDriver(handler: store.handle)
        defer { d.shutdown() }
        let tag = try expectedETag(ExchangeDriverTests.body)
        let clients = (0..<2).map { _ in d.connect() }
        for (i, c) in clients.enumerated() {
            c.send("PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 1\r\n\r\n\(i)")
        }
        d.advance(ms: 100)  // the second writer's lease poll
        let statuses = clients.compactMap { $0.response()?.status }.sorted()
        #expect(statuses == [204, 412])
        #expect(store.puts == 1, "exactly one write reaches the upstream")
    }

    @Test func writersThroughEverySpellingOfOneResourceHaveOneWinner() throws {
        let store = Store()
        let d = try ExchangeDriver(handler: store.handle)
        defer { d.shutdown() }
        let tag = try expectedETag(ExchangeDriverTests.body)
        let spellings = [("a", "/persons/9"), ("b", "/persons/9"), ("a", "/persons/9/"), ("b", "//persons/9")]
        let clients = (0..<20).map { _ in d.connect() }
        for (i, c) in clients.enumerated() {
            let (host, path) = spellings[i % spellings.count]
            c.send(
                "PUT \(path) HTTP/1.1\r\nHost: \(host)\r\nIf-Match: \(tag)\r\nContent-Length: 2\r\n\r\n\(i % 10)\(i)",
                run: false)  // all twenty in flight before the loop turns
        }
        d.advance(ms: 300)  // the queued writers' lease polls
        let statuses = clients.compactMap { $0.response()?.status }
        #expect(statuses.count == 20)
        #expect(statuses.filter { $0 == 204 }.count == 1, "one winner: \(statuses)")
        #expect(store.puts == 1, "exactly one write reaches the upstream")
    }

    @Test func aWriteThroughOneHostInvalidatesTheTagSeenThroughAnother() throws {
        let store = Store()
        let d = try ExchangeDriver(handler: store.handle)
        defer { d.shutdown() }
        let c = d.connect()
        let old = try #require(c.request("GET /persons/5 HTTP/1.1\r\nHost: b\r\n\r\n")?.header("etag"))
        let w = c.request("PUT /persons/5 HTTP/1.1\r\nHost: a\r\nIf-Match: \(old)\r\nContent-Length: 2\r\n\r\n{}")
        #expect(w?.status == 204)
        let r = c.request("GET /persons/5 HTTP/1.1\r\nHost: b\r\nIf-None-Match: \(old)\r\n\r\n")
        #expect(r?.status == 200, "not a stale 304 for the old tag")
        let old6 = try #require(c.request("GET /persons/6/ HTTP/1.1\r\nHost: a\r\n\r\n")?.header("etag"))
        let w6 = c.request("PUT /persons/6 HTTP/1.1\r\nHost: a\r\nIf-Match: \(old6)\r\nContent-Length: 2\r\n\r\n[]")
        #expect(w6?.status == 204)
        let r6 = c.request("GET /persons/6/ HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(old6)\r\n\r\n")
        #expect(r6?.status == 200, "the trailing-slash spelling was invalidated too")
    }

    @Test func concurrentMissesShareOneFetch() throws {
        let d = try ExchangeDriver(handler: { _ in .hold })
        defer { d.shutdown() }
        let clients = (0..<3).map { _ in d.connect() }
        for c in clients { c.send("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n") }
        #expect(d.heldCount == 1, "one upstream fetch for three misses")
        d.answerHeld(.respond(200, [], ExchangeDriverTests.body))
        let tags = clients.compactMap { $0.response()?.header("etag") }
        #expect(tags.count == 3)
        #expect(Set(tags) == [try expectedETag(ExchangeDriverTests.body)])
    }

    @Test func anUpstreamThatClosesWithoutAnsweringIs502() throws {
        let d = try ExchangeDriver(handler: { _ in .close })
        defer { d.shutdown() }
        let r = try #require(d.connect().request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(r.status == 502)
        #expect(r.header("content-type") == "application/problem+json")
    }

    @Test func aHeldBodyWithABrokenChunkIs502() throws {
        let d = try ExchangeDriver(handler: { _ in
            .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n".utf8), close: false)
        })
        defer { d.shutdown() }
        let c = d.connect()
        let r = try #require(c.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), "an answer, not a silent close")
        #expect(r.status == 502)
        #expect(r.header("content-type") == "application/problem+json")
    }

    @Test func anAnswerCutMidBodyEndsInAResetNotAFIN() throws {
        let d = try ExchangeDriver({ $0.etag.maxBody = 4 }) { _ in  // 100 bytes announced: streamed
            .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".utf8), close: true)
        }
        defer { d.shutdown() }
        let c = d.connect()
        c.send("GET /cut HTTP/1.0\r\n\r\n")
        #expect(String(decoding: c.unparsed, as: UTF8.self).hasSuffix("only part"))
        #expect(c.isClosed && c.peer.connectionReset && !c.peer.connectionShutDown)
    }

    @Test func aRefusedConnectionIs502() throws {
        let d = try ExchangeDriver()
        defer { d.shutdown() }
        d.upstream.refusesConnections = true
        let r = try #require(d.connect().request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(r.status == 502)
        #expect(r.bodyText.contains("connection refused"))
    }

    @Test func aSilentUpstreamIs504AfterTheUpstreamTimeout() throws {
        let d = try ExchangeDriver({ $0.timeouts.upstream = 50 }, handler: { _ in .hold })
        defer { d.shutdown() }
        let c = d.connect()
        c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.response() == nil)
        d.advance(ms: 80)
        #expect(c.response()?.status == 504)
    }

    @Test func aPooledConnectionFoundClosedIsReplacedOnceForAnIdempotentRequest() throws {
        var n = 0
        let d = try ExchangeDriver(handler: { req in
            n += 1
            return n == 2 ? .close : ExchangeDriver.echo(req)  // the pooled connection dies under the second
        })
        defer { d.shutdown() }
        let c = d.connect()
        #expect(c.request("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")?.status == 200)
        let r = c.request("GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r?.status == 200)
        #expect(d.upstream.peers.count == 2, "replayed on a fresh connection")
        #expect(d.upstreamRequests.map(\.target) == ["/a", "/b", "/b"])
    }

    @Test func aClientGoneBeforeItsWriteIsSentCancelsIt() throws {
        let store = Store()
        var holdPrefetch = true
        let d = try ExchangeDriver(handler: { req in
            if req.method == "GET" && holdPrefetch { return .hold }
            return store.handle(req)
        })
        defer { d.shutdown() }
        let c = d.connect()
        let tag = try expectedETag(ExchangeDriverTests.body)
        c.send("PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 2\r\n\r\n{}")
        #expect(d.heldCount == 1, "the pre-fetch is at the upstream")
        c.sendEOF()
        holdPrefetch = false
        d.answerHeld(.respond(200, [], ExchangeDriverTests.body))
        #expect(store.puts == 0)
        #expect(c.isClosed)
    }
}

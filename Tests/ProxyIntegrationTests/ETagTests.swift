import Foundation
import Testing
import TestSupport

@Suite("ETag = quoted SHA-1 of the body the client receives (RFC 9110 §8.8.3)")
struct ETagTests {
    @Test func etagIsTheQuotedSHA1OfTheBody() throws {
        let body = Array("{\"id\":1,\"name\":\"Ada\"}".utf8)
        let up = try TestUpstream { _ in
            .respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 200)
        #expect(r.body == body)
        #expect(r.header("ETag") == (try expectedETag(body)))
        #expect(r.all("ETag").count == 1)
        let again = try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(again.header("ETag") == r.header("ETag"), "same body, same tag")
    }

    @Test func aDifferentBodyGetsADifferentTag() throws {
        let version = Shared(1)
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: Array("v\(version.get)".utf8)) }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let a = try proxy.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag")
        version.set(2)
        let b = try proxy.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag")
        #expect(a != nil && b != nil && a != b)
    }

    @Test func chunkedUpstreamBodiesAreHashedAndSentWithALength() throws {
        let up = try TestUpstream { _ in
            .chunked(status: 200, headers: [], chunks: [Array("hello ".utf8), Array("world".utf8)])
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("GET /c HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.bodyText == "hello world")
        #expect(r.header("Content-Length") == "11")
        #expect(r.header("ETag") == (try expectedETag(Array("hello world".utf8))))
    }

    @Test func headGetsTheSameTagAsGet() throws {
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: Array("same".utf8)) }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let get = try proxy.request("GET /h HTTP/1.1\r\nHost: a\r\n\r\n")
        let head = try proxy.request("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n", head: true)
        #expect(head.header("ETag") == get.header("ETag"))
        #expect(head.header("Content-Length") == "4")
    }

    @Test func noTagOnErrorsNoContentOrRedirects() throws {
        let up = try TestUpstream { req in
            switch req.target {
            case "/404": return .respond(status: 404, headers: [], body: Array("missing".utf8))
            case "/500": return .respond(status: 500, headers: [], body: Array("boom".utf8))
            case "/302": return .respond(status: 302, headers: [("Location", "/x")], body: [])
            default: return .respond(status: 204, headers: [], body: [])
            }
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        for path in ["/404", "/500", "/302", "/204"] {
            let r = try proxy.request("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(r.header("ETag") == nil, "\(path)")
        }
    }

    @Test func writesThatAnswerWithABodyGetATag() throws {
        // etag_after_write: body — the write's own answer is hashed.
        let up = try TestUpstream { req in
            .respond(status: req.method == "POST" ? 201 : 200, headers: [], body: req.body)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.concurrency.etagAfterWrite = .body }
        defer { proxy.stop() }
        let post = try proxy.request("POST /persons HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
        #expect(post.status == 201)
        #expect(post.header("ETag") == (try expectedETag(Array("{\"a\":1}".utf8))))
    }

    @Test func aCreatedResourceIsRefetchedFromItsLocation() throws {
        // etag_after_write: refetch (default) — a 201 with a Location answers with the tag a GET of it returns.
        let up = try TestUpstream { req in
            req.method == "POST"
                ? .respond(status: 201, headers: [("Location", "/persons/9")], body: Array("{\"ok\":true}".utf8))
                : .respond(status: 200, headers: [], body: Array("person 9 at \(req.target)".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let post = try proxy.request("POST /persons HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
        #expect(post.status == 201)
        #expect(post.bodyText == "{\"ok\":true}")
        let tag = try expectedETag(Array("person 9 at /persons/9".utf8))
        #expect(post.header("ETag") == tag)
        #expect(up.requests.map(\.method) == ["POST", "GET"])
        // The next conditional GET of the Location is answered from the cache.
        #expect(try proxy.request("GET /persons/9 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n").status == 304)
        #expect(up.requests.count == 2)
    }

    @Test func upstreamTagsAreReplacedOrKept() throws {
        let up = try TestUpstream { _ in .respond(status: 200, headers: [("ETag", "\"theirs\"")], body: Array("b".utf8))
        }
        let replace = try ProxyHarness(upstream: up)
        let r = try replace.request("GET /t HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.all("ETag") == [try expectedETag(Array("b".utf8))])
        replace.stop()
        let up2 = try TestUpstream { _ in
            .respond(status: 200, headers: [("ETag", "\"theirs\"")], body: Array("b".utf8))
        }
        let keep = try ProxyHarness(upstream: up2) { $0.etag.upstream = .keep }
        defer { keep.stop() }
        let k = try keep.request("GET /t HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(k.all("ETag") == ["\"theirs\""])
        let k304 = try keep.request("GET /t HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"theirs\"\r\n\r\n")
        #expect(k304.status == 304)
        #expect(k304.header("ETag") == "\"theirs\"")
    }

    @Test func bodiesAboveTheLimitPassIntactWithoutATag() throws {
        let body = (0..<(300 * 1024)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let up = try TestUpstream { req in
            req.target == "/chunked"
                ? .chunked(
                    status: 200, headers: [],
                    chunks: stride(from: 0, to: body.count, by: 50_000).map {
                        Array(body[$0..<min($0 + 50_000, body.count)])
                    })
                : .respond(status: 200, headers: [], body: body)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.etag.maxBody = 100 * 1024 }
        defer { proxy.stop() }
        for path in ["/length", "/chunked"] {
            let r = try proxy.request("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(r.status == 200)
            #expect(r.body == body, "\(path) intact")
            #expect(r.header("ETag") == nil, "\(path) has no tag")
        }
    }
}

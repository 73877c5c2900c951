import EtagCache
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("304 from the shared-memory cache, freshness, invalidation, isolation (RFC 9111 §4.4, RFC 9211)", .serialized)
struct SharedCacheProxyTests {
    @Test func aFreshEntryAnswersWithoutTheUpstream() throws {
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: Array("cached".utf8)) }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let first = try proxy.request("GET /c HTTP/1.1\r\nHost: a\r\n\r\n")
        let tag = try #require(first.header("ETag"))
        #expect(first.header("Cache-Status") == "etag-proxy; fwd=miss; fwd-status=200; stored")
        for _ in 0..<5 {
            let r = try proxy.request("GET /c HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
            #expect(r.status == 304)
            #expect(r.header("Cache-Status") == "etag-proxy; hit")
        }
        #expect(up.requests.count == 1, "the upstream saw only the first request")
        #expect(proxy.server.counter(.notModifiedFromCache) == 5)
        #expect(proxy.server.counter(.cacheStores) == 1)
    }

    @Test func afterTheTTLAnOutOfBandChangeGivesTheNewBody() throws {
        let content = Shared("old")
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: Array(content.get.utf8)) }
        let proxy = try ProxyHarness(upstream: up) { $0.cache.ttl = 300 }
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /t HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        content.set("new")  // changed behind the proxy's back
        #expect(try proxy.request("GET /t HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n").status == 304)
        Thread.sleep(forTimeInterval: 0.4)
        let r = try proxy.request("GET /t HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(r.status == 200)
        #expect(r.bodyText == "new")
        #expect(r.header("ETag") != tag)
        #expect(r.header("Cache-Status")?.contains("fwd=stale") == true)
    }

    @Test func unchangedAfterTheTTLGives304AfterAskingTheUpstream() throws {
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: Array("same".utf8)) }
        let proxy = try ProxyHarness(upstream: up) { $0.cache.ttl = 100 }
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /u HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        Thread.sleep(forTimeInterval: 0.2)
        let r = try proxy.request("GET /u HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(r.status == 304)
        #expect(up.requests.count == 2)
        #expect(proxy.server.counter(.notModifiedFromUpstream) == 1)
    }

    @Test(arguments: ["no-store", "no-cache", "private", "max-age=0"])
    func upstreamDirectivesKeepTheUpstreamAsked(_ directive: String) throws {
        let up = try TestUpstream { _ in
            .respond(status: 200, headers: [("Cache-Control", directive)], body: Array("d".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /d HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        let r = try proxy.request("GET /d HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(r.status == 304, "the tag is still evaluated after asking the upstream")
        #expect(up.requests.count == 2, "\(directive): never answered from the cache")
    }

    @Test func maxAgeCapsTheTTL() throws {
        let up = try TestUpstream { _ in
            .respond(status: 200, headers: [("Cache-Control", "max-age=1")], body: Array("m".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /m HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        #expect(try proxy.request("GET /m HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n").status == 304)
        #expect(up.requests.count == 1)
        Thread.sleep(forTimeInterval: 1.1)
        _ = try proxy.request("GET /m HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(up.requests.count == 2, "after max-age the upstream is asked")
    }

    @Test func twoUsersNeverShareAnEntry() throws {
        let up = try TestUpstream { req in
            .respond(status: 200, headers: [], body: Array("for \(req.header("Authorization") ?? "")".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let alice = try proxy.request("GET /me HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer alice\r\n\r\n")
        let aliceTag = try #require(alice.header("ETag"))
        // Bob presents Alice's tag: his representation differs, so the proxy must not 304 him from her entry.
        let bob = try proxy.request(
            "GET /me HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer bob\r\nIf-None-Match: \(aliceTag)\r\n\r\n")
        #expect(bob.status == 200)
        #expect(bob.bodyText == "for Bearer bob")
        #expect(up.requests.count == 2)
        #expect(up.requests.last?.header("Authorization") == "Bearer bob")
    }

    @Test func varyNamedFieldsJoinTheKey() throws {
        let up = try TestUpstream { req in
            .respond(
                status: 200, headers: [("Vary", "X-Tenant")],
                body: Array("tenant \(req.header("X-Tenant") ?? "-")".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let t1 = try #require(try proxy.request("GET /v HTTP/1.1\r\nHost: a\r\nX-Tenant: 1\r\n\r\n").header("ETag"))
        #expect(
            try proxy.request("GET /v HTTP/1.1\r\nHost: a\r\nX-Tenant: 1\r\nIf-None-Match: \(t1)\r\n\r\n").status == 304
        )
        #expect(up.requests.count == 1)
        let other = try proxy.request("GET /v HTTP/1.1\r\nHost: a\r\nX-Tenant: 2\r\nIf-None-Match: \(t1)\r\n\r\n")
        #expect(other.status == 200)
        #expect(other.bodyText == "tenant 2")
    }

    /// RFC 9110 §8.8.3: a content-coded body and an identity body never share a strong tag — the key takes in
    /// Accept-Encoding whenever the upstream sets Content-Encoding, even when `cache.key_headers` leaves it out
    /// and the upstream sends no Vary.
    @Test(arguments: [["authorization", "cookie", "accept", "accept-encoding", "accept-language"], ["authorization"]])
    func codedAndIdentityBodiesNeverShareAnEntry(_ keyHeaders: [String]) throws {
        let up = try TestUpstream { req in
            (req.header("Accept-Encoding") ?? "").contains("gzip")
                ? .respond(status: 200, headers: [("Content-Encoding", "gzip")], body: [0x1F, 0x8B, 0x08, 0x00, 0x01])
                : .respond(status: 200, headers: [], body: Array("plain".utf8))
        }
        let proxy = try ProxyHarness(upstream: up) { $0.cache.keyHeaders = keyHeaders }
        defer { proxy.stop() }
        let gz = try proxy.request("GET /e HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n")
        let gzTag = try #require(gz.header("ETag"))
        #expect(gzTag == "\"\(TestSHA1.hex(gz.body))\"", "the tag is over the coded bytes as sent")
        let r = try proxy.request("GET /e HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(gzTag)\r\n\r\n")
        #expect(r.status == 200)
        #expect(r.bodyText == "plain")
        #expect(up.requests.count == 2)
        let again = try proxy.request(
            "GET /e HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nIf-None-Match: \(gzTag)\r\n\r\n")
        #expect(again.status == 304)
        #expect(again.header("Cache-Status") == "etag-proxy; hit")
    }

    @Test func aSuccessfulWriteInvalidatesTheTargetItsParentAndLocation() throws {
        let up = try TestUpstream { req in
            req.method == "GET"
                ? .respond(status: 200, headers: [], body: Array("state of \(req.target)".utf8))
                : .respond(status: 200, headers: [("Content-Location", "/other")], body: Array("{}".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        var tags: [String: String] = [:]
        for path in ["/persons/1", "/persons", "/persons?page=2", "/other", "/unrelated"] {
            tags[path] = try proxy.request("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag")
        }
        _ = try proxy.request("PUT /persons/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
        let before = up.requests.count
        // /persons/1 itself was re-fetched inside the write (its new tag is stored); the others were invalidated.
        for (path, expectUpstream) in [
            ("/persons/1", false), ("/persons", true), ("/persons?page=2", true), ("/other", true),
            ("/unrelated", false),
        ] {
            let n = up.requests.count
            let r = try proxy.request("GET \(path) HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tags[path]!)\r\n\r\n")
            #expect(r.status == 304)
            #expect((up.requests.count > n) == expectUpstream, "\(path)")
        }
        #expect(up.requests.count == before + 3)
        #expect(proxy.server.counter(.cacheInvalidations) >= 3)
    }

    @Test func aFailedWriteInvalidatesNothing() throws {
        let up = try TestUpstream { req in
            req.method == "GET"
                ? .respond(status: 200, headers: [], body: Array("x".utf8))
                : .respond(status: 409, headers: [], body: [])
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /f HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        #expect(try proxy.request("DELETE /f HTTP/1.1\r\nHost: a\r\n\r\n").status == 409)
        let n = up.requests.count
        #expect(try proxy.request("GET /f HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n").status == 304)
        #expect(up.requests.count == n, "still answered from the cache")
    }

    @Test func twoProcessesShareOneRegion() throws {
        let content = Shared("v1")
        let up = try TestUpstream { req in
            if req.method == "PUT" { content.set(req.bodyText) }
            return .respond(status: 200, headers: [], body: Array(content.get.utf8))
        }
        defer { up.stop() }
        let pair = try ProcessPair(upstreamPort: up.port)
        defer { pair.stop() }
        let (pa, pb) = (pair.a.port, pair.b.port)
        let tag = try #require(try RawRequest.send(port: pa, "GET /shared HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        let viaB = try RawRequest.send(port: pb, "GET /shared HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(viaB.status == 304, "stored through A, answered through B")
        #expect(viaB.header("Cache-Status") == "etag-proxy; hit")
        #expect(up.requests.count == 1)
        // A write through B invalidates the entry for A.
        #expect(
            try RawRequest.send(port: pb, "PUT /shared HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nv2").status
                == 200)
        let viaA = try RawRequest.send(port: pa, "GET /shared HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(viaA.status == 200)
        #expect(viaA.bodyText == "v2")
    }

    /// RFC 9110 §15.4.5: a 304 repeats the 200's Cache-Control, Content-Location, Expires and Vary. The region holds
    /// only a digest of them, so a process that never saw them asks the upstream once, then answers from the cache.
    @Test func aProcessThatNeverSawThe304FieldsAsksTheUpstreamOnce() throws {
        let fields = Shared("max-age=60")
        let up = try TestUpstream { _ in
            .respond(
                status: 200, headers: [("Cache-Control", fields.get), ("Content-Location", "/f.json")],
                body: Array("fields".utf8))
        }
        defer { up.stop() }
        let pair = try ProcessPair(upstreamPort: up.port, workers: 1)
        defer { pair.stop() }
        let (pa, pb) = (pair.a.port, pair.b.port)
        let tag = try #require(try RawRequest.send(port: pa, "GET /f HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        let conditional = "GET /f HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n"
        let viaA = try RawRequest.send(port: pa, conditional)
        #expect(viaA.header("Cache-Status") == "etag-proxy; hit")
        #expect(viaA.header("Cache-Control") == "max-age=60")
        #expect(up.requests.count == 1)

        let first = try RawRequest.send(port: pb, conditional)
        #expect(first.status == 304)
        #expect(first.header("Cache-Control") == "max-age=60")
        #expect(first.header("Content-Location") == "/f.json")
        #expect(first.header("Cache-Status")?.contains("fwd=miss") == true)
        #expect(up.requests.count == 2, "B did not know the field set: it asked the upstream")
        let second = try RawRequest.send(port: pb, conditional)
        #expect(second.header("Cache-Status") == "etag-proxy; hit")
        #expect(second.header("Cache-Control") == "max-age=60")
        #expect(second.header("Content-Location") == "/f.json")
        #expect(up.requests.count == 2)

        // The upstream changes its Cache-Control (same body, same tag): B stores the new set; A, whose memory
        // holds only the old one, must not repeat it.
        fields.set("max-age=30")
        _ = try RawRequest.send(port: pb, "GET /f HTTP/1.1\r\nHost: a\r\n\r\n")  // unconditional: forwarded, stored
        let afterChange = try RawRequest.send(port: pa, conditional)
        #expect(afterChange.status == 304)
        #expect(afterChange.header("Cache-Control") == "max-age=30")
    }
}

enum RawRequest {
    static func send(port: Int, _ raw: String) throws -> HTTPMessage {
        let c = try RawClient(port: port)
        defer { c.close() }
        c.send(raw)
        guard let r = c.response() else { throw TestError("no response") }
        return r
    }
}

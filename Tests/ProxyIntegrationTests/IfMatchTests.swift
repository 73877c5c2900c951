import EtagCore
import Foundation
import Testing
import TestSupport

/// PUT/PATCH/DELETE with If-Match: pre-fetch, strong comparison, 412 before the write (RFC 9110 §13.1.1,
/// §13.2; RFC 6585 §3 for 428).
@Suite("If-Match on writes: 412 and 428, the write never sent on a mismatch")
struct IfMatchTests {
    func setUp(
        _ initial: [String: String] = ["/persons/1": "{\"name\":\"Ada\"}"],
        configure: (inout ProxyConfig) -> Void = { _ in }
    )
        throws -> (ProxyHarness, RecordingStore)
    {
        let store = RecordingStore(initial)
        let up = try TestUpstream { store.handle($0) }
        let proxy = try ProxyHarness(upstream: up) { configure(&$0) }
        return (proxy, store)
    }

    func tag(_ proxy: ProxyHarness, _ path: String = "/persons/1") throws -> String {
        try #require(try proxy.request("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
    }

    func put(
        _ proxy: ProxyHarness, _ fields: String, _ body: String = "{\"name\":\"Bob\"}", method: String = "PUT",
        path: String = "/persons/1"
    ) throws -> HTTPMessage {
        try proxy.request(
            "\(method) \(path) HTTP/1.1\r\nHost: a\r\n\(fields)Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    @Test func matchingIfMatchWritesAndAnswersTheNewTag() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        let old = try tag(proxy)
        let r = try put(proxy, "If-Match: \(old)\r\n")
        #expect(r.status == 200)
        let new = try #require(r.header("ETag"))
        #expect(new != old)
        #expect(new == (try expectedETag(Array("{\"name\":\"Bob\"}".utf8))))
        #expect(store.writeCount == 1)
        // The tag of the write is the tag the next GET returns: the next If-Match with it succeeds.
        #expect(try tag(proxy) == new)
        #expect(try put(proxy, "If-Match: \(new)\r\n", "{\"name\":\"Cy\"}").status == 200)
    }

    @Test func staleIfMatchGets412AndTheWriteNeverReachesTheUpstream() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        let current = try tag(proxy)
        let r = try put(proxy, "If-Match: \"0000000000000000000000000000000000000000\"\r\n")
        #expect(r.status == 412)
        #expect(r.header("Content-Type") == "application/problem+json")
        #expect(r.bodyText.contains("\"status\":412"))
        #expect(r.bodyText.contains("GET it again"))
        #expect(r.bodyText.contains("\"etag\":\"\\\"\(current.dropFirst().dropLast())\\\"\""))
        #expect(r.header("ETag") == current)
        #expect(store.writeCount == 0)
        #expect(store.value("/persons/1") == "{\"name\":\"Ada\"}")
    }

    @Test func unquotedAndListedTagsWorkAndWeakNeverMatches() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        let current = try tag(proxy)
        #expect(try put(proxy, "If-Match: W/\(current)\r\n").status == 412, "a weak tag never matches If-Match")
        let unquoted = current.replacingOccurrences(of: "\"", with: "")
        #expect(try put(proxy, "If-Match: \"x\", \(unquoted)\r\n").status == 200)
        #expect(store.writeCount == 1)
    }

    @Test func patchAndDeleteAreCheckedToo() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        #expect(try put(proxy, "If-Match: \"stale\"\r\n", method: "PATCH").status == 412)
        #expect(try proxy.request("DELETE /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \"stale\"\r\n\r\n").status == 412)
        #expect(store.writeCount == 0)
        let current = try tag(proxy)
        let patched = try put(proxy, "If-Match: \(current)\r\n", "{\"name\":\"P\"}", method: "PATCH")
        #expect(patched.status == 200)
        let t = try #require(patched.header("ETag"))
        let deleted = try proxy.request("DELETE /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(t)\r\n\r\n")
        #expect(deleted.status == 204)
        #expect(deleted.header("ETag") == nil)
        #expect(store.value("/persons/1") == nil)
    }

    @Test func starMatchesOnlyAnExistingResource() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        #expect(try put(proxy, "If-Match: *\r\n", path: "/persons/404").status == 412)
        #expect(try put(proxy, "If-Match: *\r\n").status == 200)
        #expect(store.writeCount == 1)
    }

    @Test func createOnlyPutWithIfNoneMatchStar() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        #expect(try put(proxy, "If-None-Match: *\r\n", path: "/persons/2").status == 201)
        #expect(try put(proxy, "If-None-Match: *\r\n", path: "/persons/2").status == 412, "it exists now")
        #expect(try put(proxy, "If-None-Match: *\r\n").status == 412)
        #expect(store.writeCount == 1)
    }

    @Test func enforcedIfMatchGives428() throws {
        let (proxy, store) = try setUp { $0.concurrency.enforceIfMatch = true }
        defer { proxy.stop() }
        let r = try put(proxy, "")
        #expect(r.status == 428)
        #expect(r.header("Content-Type") == "application/problem+json")
        #expect(r.bodyText.contains("If-Match"))
        #expect(try proxy.request("DELETE /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n").status == 428)
        #expect(store.writeCount == 0)
        #expect(try put(proxy, "If-Match: \(try tag(proxy))\r\n").status == 200)
    }

    @Test func withoutIfMatchWritesPassWhenNotEnforcedAndChecksCanBeOff() throws {
        let (proxy, store) = try setUp()
        defer { proxy.stop() }
        #expect(try put(proxy, "").status == 200)
        proxy.stop()
        let (off, offStore) = try setUp { $0.concurrency.enabled = false }
        defer { off.stop() }
        #expect(try put(off, "If-Match: \"stale\"\r\n").status == 200, "concurrency.enabled: false sends the write")
        #expect(offStore.writeCount == 1)
        #expect(off.upstream.requests.last?.header("If-Match") == nil, "the proxy's tags never reach the upstream")
        #expect(store.writeCount == 1)
    }

    @Test func anUpstreamThatAnswersOkGivesTheRefetchedTag() throws {
        let (proxy, store) = try setUp()
        store.writeAnswer = "{\"ok\": true}"
        defer { proxy.stop() }
        let r = try put(proxy, "If-Match: \(try tag(proxy))\r\n")
        #expect(r.bodyText == "{\"ok\": true}")
        let t = try #require(r.header("ETag"))
        #expect(
            t == (try expectedETag(Array("{\"name\":\"Bob\"}".utf8))),
            "the tag of the representation, not of {\"ok\": true}")
        #expect(try put(proxy, "If-Match: \(t)\r\n", "{\"name\":\"C\"}").status == 200)
    }

    @Test func thePrefetchSeesWhatTheClientSaw() throws {
        let up = try TestUpstream { req in
            req.method == "GET"
                ? .respond(
                    status: 200, headers: [],
                    body: Array(
                        "\(req.target) for \(req.header("Authorization") ?? "-") \(req.header("Accept-Language") ?? "-")"
                            .utf8))
                : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let seen = try #require(
            try proxy.request(
                "GET /doc?v=2 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer u1\r\nAccept-Language: fr\r\n\r\n"
            ).header("ETag"))
        let r = try proxy.request(
            "PUT /doc?v=2 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer u1\r\nAccept-Language: fr\r\nIf-Match: \(seen)\r\nContent-Length: 1\r\n\r\nx"
        )
        #expect(r.status == 200)
        let prefetch = try #require(up.requests.dropFirst().first)
        #expect(prefetch.method == "GET")
        #expect(prefetch.target == "/doc?v=2")
        #expect(prefetch.header("Authorization") == "Bearer u1")
        #expect(prefetch.header("If-Match") == nil)
        #expect(
            up.requests.dropFirst(2).first?.header("If-Match") == nil, "the proxy's own tags never reach the upstream")
    }

    @Test func aPrefetchAnswered401IsRelayedAndTheWriteNotSent() throws {
        let writes = Shared(0)
        let up = try TestUpstream { req in
            if req.method != "GET" { writes.update { $0 += 1 } }
            return req.method == "GET"
                ? .respond(status: 401, headers: [("WWW-Authenticate", "Bearer")], body: Array("who?".utf8))
                : .respond(status: 200, headers: [], body: [])
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("PUT /x HTTP/1.1\r\nHost: a\r\nIf-Match: \"t\"\r\nContent-Length: 1\r\n\r\nx")
        #expect(r.status == 401)
        #expect(r.header("WWW-Authenticate") == "Bearer")
        #expect(writes.get == 0)
    }

    @Test func aFailedWriteLeavesTheCacheAsItWas() throws {
        let up = try TestUpstream { req in
            req.method == "GET"
                ? .respond(status: 200, headers: [], body: Array("v".utf8))
                : .respond(status: 500, headers: [], body: Array("no".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let t = try #require(try proxy.request("GET /f HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        let r = try proxy.request("PUT /f HTTP/1.1\r\nHost: a\r\nIf-Match: \(t)\r\nContent-Length: 1\r\n\r\nx")
        #expect(r.status == 500)
        #expect(r.header("ETag") == nil)
        let n = up.requests.count
        #expect(try proxy.request("GET /f HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(t)\r\n\r\n").status == 304)
        #expect(up.requests.count == n)
    }

    @Test func aPostWithoutLocationIsTaggedByItsBodyAndNoneSendsNoTag() throws {
        let up = try TestUpstream { req in .respond(status: 201, headers: [], body: Array("made".utf8)) }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("POST /things HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        #expect(r.header("ETag") == (try expectedETag(Array("made".utf8))))
        let up2 = try TestUpstream { req in .respond(status: 200, headers: [], body: Array(req.bodyText.utf8)) }
        let none = try ProxyHarness(upstream: up2) { $0.concurrency.etagAfterWrite = .none }
        defer { none.stop() }
        let n = try none.request("PUT /things/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\ny")
        #expect(n.status == 200)
        #expect(n.header("ETag") == nil)
        #expect(up2.requests.map(\.method) == ["PUT"], "no re-fetch")
    }

    @Test func aClientThatLeavesDuringThePrefetchCancelsItsWrite() throws {
        let writes = Shared(0)
        let up = try TestUpstream { req in
            if req.method != "GET" { writes.update { $0 += 1 } }
            return req.method == "GET"
                ? .delay(0.4, .respond(status: 200, headers: [], body: Array("v".utf8)))
                : .respond(status: 200, headers: [], body: [])
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let tag = try expectedETag(Array("v".utf8))
        let c = try proxy.connect()
        c.send("PUT /leave HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 1\r\n\r\nx")
        Thread.sleep(forTimeInterval: 0.1)
        c.close()  // gone while the pre-fetch waits on the upstream
        Thread.sleep(forTimeInterval: 0.6)
        #expect(writes.get == 0, "the write was cancelled")
        // The lease was released: the next write to the same resource goes through.
        #expect(
            try proxy.request("PUT /leave HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 1\r\n\r\ny").status
                == 200)
        #expect(writes.get == 1)
    }
}

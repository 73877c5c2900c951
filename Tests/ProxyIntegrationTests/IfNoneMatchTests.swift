import Foundation
import Testing
import TestSupport

@Suite("If-None-Match on GET/HEAD: lists, *, weak and unquoted tags, the 304 field set (RFC 9110 §13.1.2, §15.4.5)")
struct IfNoneMatchTests {
    static let body = Array("{\"id\":1}".utf8)

    func setUp(headers: [(String, String)] = []) throws -> (ProxyHarness, String) {
        let up = try TestUpstream { _ in .respond(status: 200, headers: headers, body: Self.body) }
        let proxy = try ProxyHarness(upstream: up)
        let tag = try #require(try proxy.request("GET /r HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        return (proxy, tag)
    }

    func get(_ proxy: ProxyHarness, _ fields: String, method: String = "GET") throws -> HTTPMessage {
        try proxy.request("\(method) /r HTTP/1.1\r\nHost: a\r\n\(fields)\r\n", head: method == "HEAD")
    }

    @Test func matchingTagGives304WithoutBody() throws {
        let (proxy, tag) = try setUp()
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send("GET /r HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\nGET /r HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.status == 304)
        #expect(r.header("ETag") == tag)
        #expect(r.header("Date") != nil)
        #expect(r.header("Content-Length") == nil)
        #expect(c.response()?.body == Self.body, "no body bytes after the 304: the next response parses")
    }

    @Test(arguments: [
        "If-None-Match: \"nope\", TAG", "If-None-Match: W/TAG", "If-None-Match: *", "If-None-Match: UNQUOTED",
        "If-None-Match: \"nope\"\r\nIf-None-Match: TAG",
    ])
    func listsStarWeakAndUnquotedMatch(_ template: String) throws {
        let (proxy, tag) = try setUp()
        defer { proxy.stop() }
        let field = template.replacingOccurrences(of: "UNQUOTED", with: tag.replacingOccurrences(of: "\"", with: ""))
            .replacingOccurrences(of: "TAG", with: tag)
        #expect(try get(proxy, field + "\r\n").status == 304, "\(field)")
    }

    @Test func nonMatchingTagGivesTheFull200() throws {
        let (proxy, _) = try setUp()
        defer { proxy.stop() }
        let r = try get(proxy, "If-None-Match: \"0000000000000000000000000000000000000000\"\r\n")
        #expect(r.status == 200)
        #expect(r.body == Self.body)
    }

    @Test func ifModifiedSinceIsIgnoredWhenIfNoneMatchIsPresent() throws {
        let (proxy, tag) = try setUp()
        defer { proxy.stop() }
        // A date in the future would mean "not modified"; the non-matching tag decides: 200.
        let future = "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
        #expect(try get(proxy, "If-None-Match: \"other\"\r\n" + future).status == 200)
        // A date long past would mean "modified"; the matching tag decides: 304.
        #expect(
            try get(proxy, "If-None-Match: \(tag)\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n").status
                == 304)
        #expect(
            proxy.upstream.requests.allSatisfy {
                $0.header("If-Modified-Since") == nil && $0.header("If-None-Match") == nil
            })
    }

    @Test func headWithMatchingTagGives304() throws {
        let (proxy, tag) = try setUp()
        defer { proxy.stop() }
        #expect(try get(proxy, "If-None-Match: \(tag)\r\n", method: "HEAD").status == 304)
    }

    @Test func notModifiedCarriesTheValidatorFieldsOfThe200() throws {
        let fields = [
            ("Cache-Control", "max-age=60"), ("Content-Location", "/r.json"),
            ("Expires", "Fri, 01 Jan 2100 00:00:00 GMT"),
            ("Vary", "Accept"), ("Content-Type", "application/json"), ("X-Other", "1"),
        ]
        let (proxy, tag) = try setUp(headers: fields)
        defer { proxy.stop() }
        for pass in 0..<2 {  // from the cache, then (after the cache is bypassed by no-cache headers? no: same) again
            let r = try get(proxy, "If-None-Match: \(tag)\r\n")
            #expect(r.status == 304)
            #expect(r.header("Cache-Control") == "max-age=60", "pass \(pass)")
            #expect(r.header("Content-Location") == "/r.json")
            #expect(r.header("Expires") == "Fri, 01 Jan 2100 00:00:00 GMT")
            #expect(r.header("Vary") == "Accept")
            #expect(r.header("Content-Type") == nil)
            #expect(r.header("X-Other") == nil)
        }
    }

    @Test func ifMatchOnGetIsEvaluatedToo() throws {
        let (proxy, tag) = try setUp()
        defer { proxy.stop() }
        #expect(try get(proxy, "If-Match: \(tag)\r\n").status == 200)
        let r = try get(proxy, "If-Match: \"stale\"\r\n")
        #expect(r.status == 412)
        #expect(r.header("Content-Type") == "application/problem+json")
    }

    /// One 412 for reads and writes: a GET whose If-Match fails learns the current tag (ETag field and the
    /// problem's `etag` member), whether the fresh cache entry or the upstream's answer decided it.
    @Test func aGetWhoseIfMatchFailsIsToldTheCurrentTag() throws {
        let (proxy, tag) = try setUp()
        defer { proxy.stop() }
        let fromCache = try get(proxy, "If-Match: \"stale\"\r\n")
        // Not in the cache yet: the upstream's 200 decides.
        let forwarded = try proxy.request("GET /other HTTP/1.1\r\nHost: a\r\nIf-Match: \"stale\"\r\n\r\n")
        for r in [fromCache, forwarded] {
            #expect(r.status == 412)
            #expect(r.header("ETag") == tag)
            #expect(r.bodyText.contains("\"etag\":\"\(tag.replacingOccurrences(of: "\"", with: "\\\""))\""))
        }
    }
}

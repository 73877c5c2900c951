import EtagHTTP
import Testing
@testable import EtagCore

/// The exchange decisions, table-tested without sockets: the response plan, the write check after a pre-fetch,
/// the re-fetch target, the Cache-Status line and the current tag.
@Suite("Exchange decisions: response plan, write check, re-fetch target, Cache-Status")
struct ExchangeDecisionTests {
    struct PlanCase {
        let status: Int
        let framing: ResponseFraming
        let asker: ResponsePlan.Asker
        var mode: UpstreamETagMode = .replace
        var theirs = false
        var afterWrite: ETagAfterWrite = .refetch
        let expected: ResponsePlan
    }

    @Test func responsePlan() {
        let cases: [PlanCase] = [
            // OPTIONS and TRACE: relayed untagged, whatever the body.
            .init(status: 200, framing: .length(10), asker: .safeOther, expected: .stream),
            .init(status: 200, framing: .chunked, asker: .safeOther, afterWrite: .body, expected: .stream),
            // Reads: a 200 is held and hashed; errors, redirects and 204 stream.
            .init(status: 200, framing: .length(10), asker: .read(conditions: false), expected: .hold(digest: true)),
            .init(status: 200, framing: .chunked, asker: .read(conditions: true), expected: .hold(digest: true)),
            .init(status: 404, framing: .length(10), asker: .read(conditions: false), expected: .stream),
            .init(status: 301, framing: .length(0), asker: .read(conditions: false), expected: .stream),
            .init(status: 206, framing: .length(10), asker: .read(conditions: false), expected: .stream),
            // Larger than etag.max_body (100 here): streamed untagged; an unknown length is held and may overflow.
            .init(status: 200, framing: .length(101), asker: .read(conditions: false), expected: .stream),
            .init(status: 200, framing: .length(100), asker: .read(conditions: false), expected: .hold(digest: true)),
            .init(status: 200, framing: .untilClose, asker: .read(conditions: false), expected: .hold(digest: true)),
            // etag.upstream: keep with the upstream's own tag: streamed, unless a condition is checked here.
            .init(
                status: 200, framing: .length(5), asker: .read(conditions: false), mode: .keep, theirs: true,
                expected: .stream),
            .init(
                status: 200, framing: .length(5), asker: .read(conditions: true), mode: .keep, theirs: true,
                expected: .hold(digest: false)),
            .init(
                status: 200, framing: .length(5), asker: .read(conditions: false), mode: .keep, theirs: false,
                expected: .hold(digest: true)),
            // Writes waiting for their re-fetch are held without a digest (the re-fetch gives the tag).
            .init(status: 200, framing: .length(5), asker: .write(refetchWaits: true), expected: .hold(digest: false)),
            .init(status: 204, framing: .none, asker: .write(refetchWaits: true), expected: .hold(digest: false)),
            // etag_after_write: body tags a 200/201 with a body; nothing for 204 or errors.
            .init(
                status: 201, framing: .length(5), asker: .write(refetchWaits: false), afterWrite: .body,
                expected: .hold(digest: true)),
            .init(
                status: 204, framing: .none, asker: .write(refetchWaits: false), afterWrite: .body, expected: .stream),
            .init(
                status: 200, framing: .length(0), asker: .write(refetchWaits: false), afterWrite: .body,
                expected: .stream),
            .init(
                status: 500, framing: .length(5), asker: .write(refetchWaits: false), afterWrite: .body,
                expected: .stream),
            .init(
                status: 200, framing: .length(5), asker: .write(refetchWaits: false), afterWrite: .none,
                expected: .stream),
            // A POST's 201 without a Location under refetch: its own body is tagged.
            .init(status: 201, framing: .length(5), asker: .write(refetchWaits: false), expected: .hold(digest: true)),
        ]
        for (i, c) in cases.enumerated() {
            let plan = ResponsePlan.decide(
                status: c.status, framing: c.framing, asker: c.asker, etagMode: c.mode, upstreamTag: c.theirs,
                afterWrite: c.afterWrite, maxBody: 100)
            #expect(plan == c.expected, "case \(i): \(c.status) \(c.asker)")
        }
    }

    let tag = Array("\"abc\"".utf8)

    @Test func writeCheckAfterThePrefetch() {
        func check(
            _ ifMatch: String?, ifNoneMatch: String? = nil, status: Int, tooLarge: Bool = false,
            method: HTTPMethod = .put
        ) -> WriteCheck {
            let c = Conditions(
                ifMatch: ifMatch.map(EntityTagList.parse), ifNoneMatch: ifNoneMatch.map(EntityTagList.parse))
            return WriteCheck.decide(
                method: method, conditions: c, status: status, tooLarge: tooLarge,
                currentTag: (200..<300).contains(status) ? tag : nil)
        }
        #expect(check("\"abc\"", status: 200) == .send)
        #expect(check("\"x\", \"abc\"", status: 200) == .send)
        #expect(check("*", status: 200) == .send)
        #expect(check("\"old\"", status: 200) == .preconditionFailed(current: tag))
        #expect(check("W/\"abc\"", status: 200) == .preconditionFailed(current: tag), "If-Match compares strongly")
        #expect(check("\"abc\"", status: 404) == .preconditionFailed(current: nil))
        #expect(check("*", status: 410) == .preconditionFailed(current: nil))
        #expect(check(nil, ifNoneMatch: "*", status: 404, method: .put) == .send, "create-only write")
        #expect(check(nil, ifNoneMatch: "*", status: 200) == .preconditionFailed(current: tag))
        #expect(check("\"abc\"", status: 200, tooLarge: true) == .tooLarge)
        for status in [301, 304, 401, 403, 500, 503] {
            #expect(check("\"abc\"", status: status) == .relayPrefetch, "\(status) is relayed")
        }
    }

    @Test func refetchTarget() {
        let host = Array("api.example".utf8)
        func after(_ m: HTTPMethod, _ status: Int, _ loc: String? = nil, mode: ETagAfterWrite = .refetch) -> Refetch {
            Refetch.after(method: m, status: status, location: loc.map { Array($0.utf8) }, host: host, mode: mode)
        }
        #expect(after(.put, 200) == .target)
        #expect(after(.patch, 204) == .target)
        #expect(after(.put, 200, mode: .body) == .none)
        #expect(after(.put, 200, mode: .none) == .none)
        #expect(after(.put, 412) == .none)
        #expect(after(.put, 302) == .none)
        #expect(after(.delete, 204) == .none)
        #expect(after(.options, 200) == .none, "a safe method changes nothing (RFC 9110 §9.2.1)")
        #expect(after(.trace, 200) == .none)
        #expect(after(.post, 201, "/persons/7") == .location(Array("/persons/7".utf8)))
        #expect(after(.post, 201, "http://api.example/persons/7") == .location(Array("/persons/7".utf8)))
        #expect(after(.post, 201, "http://elsewhere/persons/7") == .none, "another origin is not re-fetched")
        #expect(after(.post, 201) == .none)
        #expect(after(.post, 200, "/persons/7") == .none)
        #expect(Refetch.target.waits && !Refetch.none.waits && Refetch.location([47]).path == [47])
    }

    @Test func pipelinedRefetch() {
        #expect(Refetch.pipelines(method: .put, mode: .refetch, enabled: true))
        #expect(!Refetch.pipelines(method: .put, mode: .refetch, enabled: false), "off unless configured")
        #expect(!Refetch.pipelines(method: .put, mode: .body, enabled: true), "no re-fetch to pipeline")
        #expect(!Refetch.pipelines(method: .put, mode: .none, enabled: true))
        #expect(!Refetch.pipelines(method: .patch, mode: .refetch, enabled: true), "not behind a non-idempotent method")
        #expect(!Refetch.pipelines(method: .post, mode: .refetch, enabled: true), "its target is known only after")
        #expect(!Refetch.pipelines(method: .delete, mode: .refetch, enabled: true), "nothing left to re-fetch")
        #expect(!Refetch.pipelines(method: .get, mode: .refetch, enabled: true))
    }

    @Test func cacheStatusLine() {
        func line(_ r: ForwardReason, _ s: Int, stored: Bool = false, collapsed: Bool = false) -> String {
            String(decoding: CacheStatus.forwarded(r, status: s, stored: stored, collapsed: collapsed), as: UTF8.self)
        }
        #expect(line(.miss, 200, stored: true) == "Cache-Status: etag-proxy; fwd=miss; fwd-status=200; stored\r\n")
        #expect(line(.miss, 200) == "Cache-Status: etag-proxy; fwd=miss; fwd-status=200\r\n")
        #expect(line(.stale, 200, stored: true) == "Cache-Status: etag-proxy; fwd=stale; fwd-status=200; stored\r\n")
        #expect(line(.varyMiss, 404) == "Cache-Status: etag-proxy; fwd=vary-miss; fwd-status=404\r\n")
        #expect(line(.request, 200) == "Cache-Status: etag-proxy; fwd=request; fwd-status=200\r\n")
        #expect(
            line(.miss, 200, stored: true, collapsed: true)
                == "Cache-Status: etag-proxy; fwd=miss; fwd-status=200; stored; collapsed\r\n")
        #expect(String(decoding: CacheStatus.hit, as: UTF8.self) == "Cache-Status: etag-proxy; hit\r\n")
    }

    @Test func currentTag() {
        let digest = SHA1Hasher().hash(Array("body".utf8))
        let theirs = Array("\"v1\"".utf8)
        #expect(RepresentationTag.current(etagMode: .keep, upstreamTag: theirs, digest: { digest }) == theirs)
        #expect(RepresentationTag.current(etagMode: .keep, upstreamTag: nil, digest: { digest }) == digest.quotedETag)
        #expect(
            RepresentationTag.current(etagMode: .replace, upstreamTag: theirs, digest: { digest }) == digest.quotedETag)
    }
}

import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Every malformed request gets 400 (or its own status) and a closed connection, reaches no upstream, and the
/// next request on a new connection succeeds (RFC 9112 §2.2, §3.2, §5, §6.1, §6.3, §7.1).
@Suite("Request smuggling and malformed input")
struct SmugglingTests {
    static let cases: [(String, String, Int)] = [
        (
            "CL and TE together",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400
        ),
        (
            "differing duplicate CL",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400
        ),
        ("differing CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
        ("CL not plain digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        ("CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        ("CL overflowing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        (
            "invalid chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400
        ),
        (
            "overflowing chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n", 400
        ),
        (
            "chunk data without CRLF",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400
        ),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
        ("bare CR in a field", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n", 400),
        ("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (
            "a line starting with a bare CR",
            "POST /p HTTP/1.1\r\nHost: a\r\n\rContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400
        ),
        (
            "chunked body ending with a bare LF",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n", 400
        ),
        ("a CR CR LF line", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\nHost: b\r\n\r\n", 400),
        ("whitespace before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n", 400),
        ("TE last coding not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400),
        ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("missing Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
        ("a dot-segment", "GET /../echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("an encoded dot-segment", "GET /%2e%2e/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("duplicate Authorization", "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\nAuthorization: y\r\n\r\n", 400),
        ("invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \u{0}\r\n\r\n", 400),
        ("malformed request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("unknown version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ]

    @Test(arguments: 0..<cases.count)
    func malformedRequestIsRejectedAndTheProxyKeepsServing(_ index: Int) throws {
        let (name, raw, status) = Self.cases[index]
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let c = try proxy.connect()
        defer { c.close() }
        c.send(raw)
        let r = try #require(c.response(), "\(name): no response")
        #expect(r.status == status, "\(name)")
        #expect(r.header("Content-Type") == "application/problem+json", "\(name)")
        #expect(r.bodyText.contains("\"status\":\(status)"), "\(name)")
        #expect(r.header("Connection") == "close", "\(name)")
        #expect(c.isClosedByPeer(), "\(name): the connection must be closed")
        #expect(up.requests.isEmpty, "\(name): nothing reaches the upstream")
        let ok = try proxy.request("GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(ok.status == 200, "\(name): the next connection is served")
    }

    /// Hundreds of mutated requests over real sockets: each gets a well-formed answer (forwarded, or refused with
    /// a status of its own) or a closed connection — never a crash, never a stray byte — and the proxy keeps serving.
    @Test func mutatedRequestsNeverBreakTheProxy() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) {
            $0.timeouts.clientHeader = 100; $0.timeouts.clientBody = 100
        }
        defer { proxy.stop() }
        let seeds = [
            "GET /a?b=1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ]
        var rng = SplitMix64(seed: 0x5EED_0003)
        var answered = 0
        for k in 0..<300 {
            let c = try proxy.connect(timeout: 3)
            c.send(Mutation.mutate(seeds[k % seeds.count], &rng))
            // Most cases half-close after sending (a cut request then ends at once); every fourth runs into the
            // header or body timeout instead.
            if k % 4 != 0 { shutdown(c.fd, Int32(SHUT_WR)) }
            if let r = c.response() {
                answered += 1
                #expect([200, 400, 405, 408, 413, 417, 431, 501, 505].contains(r.status), "case \(k): \(r.status)")
            }
            c.close()
        }
        #expect(answered > 150, "\(answered)")
        let ok = try proxy.request("GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(ok.status == 200, "still serving")
    }

    @Test func identicalDuplicateContentLengthIsAccepted() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let r = try proxy.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
        #expect(r.status == 200)
        #expect(r.bodyText == "abc")
    }

    @Test func aSmuggledSecondRequestInsideABodyIsNotExecuted() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let inner = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
        let r = try proxy.request("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: \(inner.utf8.count)\r\n\r\n\(inner)")
        #expect(r.status == 200)
        #expect(up.requests.map(\.target) == ["/x"])
    }
}

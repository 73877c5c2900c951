import EtagCore
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The upstream's name is looked up when connecting: a name that does not resolve at start-up is no reason to
/// exit; it is a 502 with the reason, and the proxy is not ready, until it resolves.
@Suite("Upstream names resolved when connecting")
struct UpstreamResolutionTests {
    @Test func anUnresolvableNameIsA502AndNotReadyNotAnExit() throws {
        let proxy = try ProxyHarness(upstream: try TestUpstream()) {
            $0.upstream = UpstreamURL(host: "etag-proxy-test.invalid", port: 9000)
        }
        defer { proxy.stop() }
        let r = try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 502)
        #expect(r.header("Content-Type") == "application/problem+json")
        #expect(r.bodyText.contains("cannot resolve the upstream host etag-proxy-test.invalid"), "\(r.bodyText)")
        let ready = try runCurl(["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(proxy.server.adminPort)/readyz"])
        #expect(ready.out.hasSuffix("503"))
        #expect(ready.out.contains("not been reached yet"), "\(ready.out)")
        // A second request within the second the failure is remembered: the same answer, no new lookup needed.
        #expect(try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n").status == 502)
    }

    @Test func checkConfigDoesNotNeedTheUpstreamToResolve() throws {
        let r = try runProcess(
            try proxyBinary(), ["--upstream", "http://etag-proxy-test.invalid:9000", "--check-config"])
        #expect(r.status == 0, "\(r.err)")
    }

    /// Where `localhost` is 127.0.0.1 first (the usual /etc/hosts), a name reaches a loopback upstream.
    @Test func aNameThatResolvesIsUsed() throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo("localhost", nil, &hints, &res) == 0, let first = res else { return }
        let ipv4First = first.pointee.ai_family == AF_INET
        freeaddrinfo(res)
        guard ipv4First else { return }
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) { $0.upstream = UpstreamURL(host: "localhost", port: up.port) }
        defer { proxy.stop() }
        #expect(try proxy.request("GET /n HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
        let ready = try runCurl(["-s", "http://127.0.0.1:\(proxy.server.adminPort)/readyz"])
        #expect(ready.out == "ready\n")
    }
}

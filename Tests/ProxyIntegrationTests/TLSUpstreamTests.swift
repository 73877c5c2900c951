import EtagCore
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// https upstreams: a real TLS server (OpenSSL, in the test support) with certificates made by `openssl`.
@Suite("TLS to the upstream: verified, pooled, resumed; failures named (https upstreams)", .serialized)
struct TLSUpstreamTests {
    let certs = TestCertificates.shared

    func tlsUpstream(
        cert: String? = nil, key: String? = nil, clientCA: String? = nil, onlyTLS12: Bool = false,
        handler: @escaping @Sendable (HTTPMessage) -> TestUpstream.Reply = TestUpstream.echo
    ) throws -> (TestUpstream, TestTLSServer) {
        let server = try TestTLSServer(
            cert: cert ?? certs.leaf, key: key ?? certs.leafKey, clientCA: clientCA, onlyTLS12: onlyTLS12)
        return (try TestUpstream(tls: server, handler: handler), server)
    }

    func proxy(_ up: TestUpstream, _ configure: (inout ProxyConfig) -> Void = { _ in }) throws -> ProxyHarness {
        try ProxyHarness(upstream: up) { c in
            c.upstream = UpstreamURL(scheme: "https", host: "127.0.0.1", port: up.port)
            c.upstreamTLS.caFile = certs.ca
            configure(&c)
        }
    }

    @Test func aVerifiedUpstreamGetsTagsAnd304sFromTheCache() throws {
        let (up, _) = try tlsUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let r = try p.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 200)
        let tag = try #require(r.header("ETag"))
        #expect(tag == (try expectedETag(r.body)))
        let again = try p.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(again.status == 304)
        #expect(up.requests.count == 1, "the 304 came from the cache")
        #expect(up.requests.first?.header("Host") == "127.0.0.1:\(up.port)")
    }

    @Test func keepAliveReuseMeansNRequestsCostFarFewerHandshakes() throws {
        let (up, tls) = try tlsUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let c = try p.connect()
        defer { c.close() }
        for i in 0..<30 {
            c.send("GET /r/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.response()?.status == 200)
        }
        #expect(up.requests.count == 30)
        #expect(tls.handshakes <= 2, "one pooled TLS connection per worker at most, not one per request")
        #expect(p.server.counter(.upstreamTLSFull) + p.server.counter(.upstreamTLSResumed) == UInt64(tls.handshakes))
    }

    @Test func aNewUpstreamConnectionResumesTheSession() throws {
        let (up, tls) = try tlsUpstream()
        // No pooling: every request needs a new upstream connection.
        let p = try proxy(up) {
            $0.upstreamPool.keepalive = 0
            $0.workers = 1
        }
        defer { p.stop() }
        for i in 0..<8 {
            #expect(try p.request("GET /n/\(i) HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
        }
        #expect(tls.handshakes == 8)
        #expect(tls.resumed >= 6, "after the first full handshake, new connections resume (\(tls.resumed) of 8)")
        #expect(p.server.counter(.upstreamTLSResumed) == UInt64(tls.resumed))
    }

    @Test func aPostAndAChunkedBodyCrossIntact() throws {
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let (up, _) = try tlsUpstream { req in
            req.method == "GET"
                ? .chunked(
                    status: 200, headers: [],
                    chunks: stride(from: 0, to: big.count, by: 100_000).map {
                        Array(big[$0..<min($0 + 100_000, big.count)])
                    })
                : TestUpstream.echo(req)
        }
        let p = try proxy(up)
        defer { p.stop() }
        let got = try p.request("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(got.status == 200)
        #expect(got.body == big)
        let body = String(repeating: "x", count: 200_000)
        let posted = try p.request(
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(posted.status == 200)
        #expect(posted.bodyText == body)
    }

    @Test func ifMatchPreFetchAndReFetchWorkOverTLS() throws {
        let store = RecordingStore(["/persons/7": "{\"v\":1}"])
        let (up, _) = try tlsUpstream(handler: { store.handle($0) })
        let p = try proxy(up)
        defer { p.stop() }
        let tag = try #require(try p.request("GET /persons/7 HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        let stale = "\"0000000000000000000000000000000000000000\""
        let refused = try p.request(
            "PUT /persons/7 HTTP/1.1\r\nHost: a\r\nIf-Match: \(stale)\r\nContent-Length: 7\r\n\r\n{\"v\":2}")
        #expect(refused.status == 412)
        let ok = try p.request(
            "PUT /persons/7 HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 7\r\n\r\n{\"v\":2}")
        #expect(ok.status == 200)
        #expect(ok.header("ETag") != tag)
        #expect(store.value("/persons/7") == "{\"v\":2}")
        #expect(store.writeCount == 1, "the stale write never reached the upstream")
    }

    /// The certificate problems an operator meets, each a 502 whose detail names the cause.
    @Test(arguments: [
        ("untrusted self-signed", "self", "certificate verify failed: self-signed certificate"),
        ("expired", "expired", "certificate verify failed: certificate has expired"),
        ("for another host", "other", "certificate verify failed: IP address mismatch"),
        ("system store only", "leaf-no-ca", "certificate verify failed: unable to get local issuer certificate"),
    ])
    func aCertificateProblemIsA502NamingIt(_ name: String, _ which: String, _ detail: String) throws {
        let (cert, key): (String, String) =
            switch which {
            case "self": (certs.selfSigned, certs.selfSignedKey)
            case "expired": (certs.expired, certs.leafKey)
            case "other": (certs.otherHost, certs.otherHostKey)
            default: (certs.leaf, certs.leafKey)
            }
        let (up, _) = try tlsUpstream(cert: cert, key: key)
        let p = try proxy(up) { if which == "leaf-no-ca" { $0.upstreamTLS.caFile = nil } }
        defer { p.stop() }
        let r = try p.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 502, "\(name)")
        #expect(r.header("Content-Type") == "application/problem+json")
        #expect(r.bodyText.contains("TLS with the upstream failed: \(detail)"), "\(name): \(r.bodyText)")
        #expect(up.requests.isEmpty, "nothing is sent over an unverified connection")
        #expect(p.server.counter(.upstreamTLSFailed) >= 1)
    }

    @Test func theHostNameIsCheckedAgainstServerName() throws {
        let (up, _) = try tlsUpstream(cert: certs.otherHost, key: certs.otherHostKey)
        let wrong = try proxy(up) { $0.upstreamTLS.serverName = "localhost" }
        let r = try wrong.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        wrong.stop()
        #expect(r.status == 502)
        #expect(r.bodyText.contains("hostname mismatch"), "\(r.bodyText)")
        let (up2, _) = try tlsUpstream(cert: certs.otherHost, key: certs.otherHostKey)
        let right = try proxy(up2) { $0.upstreamTLS.serverName = "other.example" }
        defer { right.stop() }
        #expect(try right.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }

    @Test func verifyFalseIsAnExplicitOptOut() throws {
        let (up, _) = try tlsUpstream(cert: certs.selfSigned, key: certs.selfSignedKey)
        let p = try proxy(up) { $0.upstreamTLS.verify = false }
        defer { p.stop() }
        #expect(try p.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }

    @Test func anUpstreamRequiringAClientCertificate() throws {
        let (up, _) = try tlsUpstream(clientCA: certs.ca)
        let without = try proxy(up)
        let r = try without.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        without.stop()
        #expect(r.status == 502)
        #expect(r.bodyText.contains("certificate required"), "\(r.bodyText)")
        let (up2, _) = try tlsUpstream(clientCA: certs.ca)
        let with = try proxy(up2) {
            $0.upstreamTLS.cert = certs.client
            $0.upstreamTLS.key = certs.clientKey
        }
        defer { with.stop() }
        #expect(try with.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }

    @Test func noCommonProtocolVersion() throws {
        let (up, _) = try tlsUpstream(onlyTLS12: true)
        let p = try proxy(up) { $0.upstreamTLS.minVersion = .tls13 }
        defer { p.stop() }
        let r = try p.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 502)
        #expect(r.bodyText.contains("protocol version"), "\(r.bodyText)")
    }

    @Test func aPlaintextServerBehindAnHttpsURLIsA502NeverAFallback() throws {
        let up = try TestUpstream()  // plaintext
        let p = try proxy(up) { $0.timeouts.connect = 1500 }
        defer { p.stop() }
        let r = try p.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 502 || r.status == 504)
        #expect(r.bodyText.contains("TLS with the upstream failed") || r.bodyText.contains("timed out"))
        #expect(up.requests.isEmpty, "no plaintext request was made")
    }

    @Test func aHandshakeThatStallsIsA504WithinTheConnectTimeout() throws {
        // A listener that never accepts: TCP connects (the kernel's backlog), the ClientHello is never answered.
        let (fd, port) = try Sockets.listen()
        defer { close(fd) }
        let up = try TestUpstream()
        let p = try ProxyHarness(upstream: up) {
            $0.upstream = UpstreamURL(scheme: "https", host: "127.0.0.1", port: port)
            $0.timeouts.connect = 400
        }
        defer { p.stop() }
        let start = Date()
        let r = try p.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 504)
        #expect(r.bodyText.contains("the TLS handshake with the upstream timed out"), "\(r.bodyText)")
        #expect(Date().timeIntervalSince(start) < 3)
    }
}

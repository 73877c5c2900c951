import COpenSSL
import EtagCore
import EtagServer
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// https on the client listener (`tls.cert`, `tls.key`): curl and an OpenSSL client against the proxy.
@Suite("TLS on the listener: curl, keep-alive, pipelining, plaintext and stalled handshakes, reload", .serialized)
struct TLSListenerTests {
    let certs = TestCertificates.shared

    func proxy(_ up: TestUpstream, _ configure: (inout ProxyConfig) -> Void = { _ in }) throws -> ProxyHarness {
        try ProxyHarness(upstream: up) { c in
            c.tls.cert = certs.leaf
            c.tls.key = certs.leafKey
            configure(&c)
        }
    }

    @Test func curlGetsTagsAnd304sAndTheUpstreamHearsHttps() throws {
        let up = try TestUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let url = "https://127.0.0.1:\(p.port)/persons/1"
        let r = try runCurl(["--cacert", certs.ca, "-i", url])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.hasPrefix("HTTP/1.1 200"))
        let tag = try #require(
            r.out.split(separator: "\r\n").first { $0.lowercased().hasPrefix("etag:") }?.dropFirst(5)
                .trimmingCharacters(in: .whitespaces))
        let again = try runCurl(["--cacert", certs.ca, "-i", "-H", "If-None-Match: \(tag)", url])
        #expect(again.out.hasPrefix("HTTP/1.1 304"))
        #expect(up.requests.count == 1)
        #expect(up.requests.first?.header("X-Forwarded-Proto") == "https")
        // Plain http to the same port is refused: the listener speaks TLS only.
        #expect(try runCurl(["http://127.0.0.1:\(p.port)/persons/1"]).status != 0)
    }

    @Test func curlKeepsOneConnectionForSeveralRequests() throws {
        let up = try TestUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let base = "https://127.0.0.1:\(p.port)"
        let r = try runCurl([
            "--cacert", certs.ca, "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
            "-w", "%{http_code} %{num_connects}\n", "\(base)/a", "\(base)/b", "\(base)/c",
        ])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "200 1\n200 0\n200 0\n", "one handshake for three requests")
        #expect(p.server.counter(.listenerTLSFull) == 1)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let up = try TestUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let c = try TLSRawClient(port: p.port, ca: certs.ca)
        defer { c.close() }
        c.send((1...3).map { "GET /p/\($0) HTTP/1.1\r\nHost: a\r\n\r\n" }.joined())
        for i in 1...3 {
            let r = try #require(c.response())
            #expect(r.status == 200)
            #expect(r.bodyText.contains("/p/\(i)"))
        }
        #expect(c.peerSubject.contains("CN=localhost"))
    }

    @Test func aReturningClientResumesItsSession() throws {
        let up = try TestUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let first = try TLSRawClient(port: p.port, ca: certs.ca)
        first.send("GET /s HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(first.response()?.status == 200)
        let session = try #require(first.session())
        defer { SSL_SESSION_free(session) }
        first.close()
        let second = try TLSRawClient(port: p.port, ca: certs.ca, session: session)
        defer { second.close() }
        second.send("GET /s HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(second.response()?.status == 200)
        #expect(second.resumed, "the session ticket is accepted: no full handshake")
        #expect(p.server.counter(.listenerTLSResumed) == 1)
    }

    @Test func aLargeUploadAndDownloadCrossIntact() throws {
        let up = try TestUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let body = String(repeating: "0123456789abcdef", count: 1 << 16)  // 1 MiB
        let file = NSTemporaryDirectory() + "etag-proxy-upload-\(getpid())"
        try body.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let r = try runCurl([
            "--cacert", certs.ca, "--data-binary", "@\(file)", "-H", "Content-Type: application/octet-stream",
            "https://127.0.0.1:\(p.port)/echo",
        ])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == body)
    }

    @Test func plaintextOnTheTLSPortIsClosedAndCounted() throws {
        let up = try TestUpstream()
        let p = try proxy(up)
        defer { p.stop() }
        let c = try p.connect()
        defer { c.close() }
        c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.isClosedByPeer())
        #expect(c.reader.buffer.isEmpty || c.reader.buffer.first == 0x15, "nothing but a TLS alert comes back")
        #expect(up.requests.isEmpty)
        #expect(p.server.counter(.listenerTLSFailed) == 1)
    }

    @Test func aStalledHandshakeIsClosedByTheHeaderTimeout() throws {
        let up = try TestUpstream()
        let p = try proxy(up) { $0.timeouts.clientHeader = 400 }
        defer { p.stop() }
        let silent = try p.connect(timeout: 5)
        defer { silent.close() }
        let partial = try p.connect(timeout: 5)
        defer { partial.close() }
        partial.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])  // the start of a ClientHello, then nothing
        let start = Date()
        #expect(silent.isClosedByPeer())
        #expect(partial.isClosedByPeer())
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test func tls13OnlyRefusesATLS12Client() throws {
        let up = try TestUpstream()
        let p = try proxy(up) { $0.tls.minVersion = .tls13 }
        defer { p.stop() }
        let url = "https://127.0.0.1:\(p.port)/v"
        #expect(try runCurl(["--cacert", certs.ca, "--tls-max", "1.2", url]).status != 0)
        #expect(try runCurl(["--cacert", certs.ca, url]).status == 0)
    }

    @Test func certificateProblemsNameTheKeyAndTheFile() throws {
        func problem(_ change: (inout ProxyConfig) -> Void) -> String {
            var c = ProxyConfig()
            change(&c)
            do {
                try Server.checkTLS(c)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(
            problem {
                $0.tls.cert = "/nonexistent/x.pem"
                $0.tls.key = certs.leafKey
            } == "tls.cert: cannot read /nonexistent/x.pem: No such file or directory")
        #expect(
            problem {
                $0.tls.cert = certs.leaf
                $0.tls.key = certs.otherHostKey
            }.hasPrefix("tls.key: key does not match certificate"))
        #expect(problem { $0.tls.cert = certs.leaf } == "tls.key: missing (tls.cert is set)")
        #expect(
            problem {
                $0.tls.cert = certs.leafKey  // a key where the certificate belongs
                $0.tls.key = certs.leafKey
            }.hasPrefix("tls.cert: no PEM certificate in"))
        #expect(
            problem {
                $0.upstream = UpstreamURL(scheme: "https", host: "h", port: 443)
                $0.upstreamTLS.caFile = "/nonexistent/ca.pem"
            } == "upstream_tls.ca_file: cannot read /nonexistent/ca.pem: No such file or directory")
        #expect(
            problem {
                $0.upstream = UpstreamURL(scheme: "https", host: "h", port: 443)
                $0.upstreamTLS.cert = certs.client
            } == "upstream_tls.key: missing (upstream_tls.cert is set)")
        #expect(
            problem {
                $0.tls.cert = certs.leaf; $0.tls.key = certs.leafKey
            } == "no error")
    }

    @Test func aReloadReadsTheCertificateAgain() throws {
        let dir = NSTemporaryDirectory() + "etag-proxy-reload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cert = dir + "/cert.pem"
        let key = dir + "/key.pem"
        try FileManager.default.copyItem(atPath: certs.leaf, toPath: cert)
        try FileManager.default.copyItem(atPath: certs.leafKey, toPath: key)
        let up = try TestUpstream()
        let p = try ProxyHarness(upstream: up) { c in
            c.tls.cert = cert
            c.tls.key = key
        }
        defer { p.stop() }
        #expect(throws: Never.self) { try TLSRawClient(port: p.port, ca: certs.ca).close() }
        // A renewed certificate (here: one for another name) is served after the reload, to new connections.
        try FileManager.default.removeItem(atPath: cert)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: certs.otherHost, toPath: cert)
        try FileManager.default.copyItem(atPath: certs.otherHostKey, toPath: key)
        _ = try p.server.reload(p.server.config)
        #expect(throws: TestError.self) { try TLSRawClient(port: p.port, ca: certs.ca).close() }
        // A broken file is refused and the running certificate stays.
        try "not a certificate".write(toFile: cert, atomically: true, encoding: .utf8)
        #expect(throws: TLSSetupError.self) { _ = try p.server.reload(p.server.config) }
        let r = try runCurl([
            "--cacert", certs.ca, "--resolve", "other.example:\(p.port):127.0.0.1",
            "https://other.example:\(p.port)/still",
        ])
        #expect(r.status == 0, "\(r.err)")
    }

    @Test func limitsAndMalformedRequestsGetTheSameAnswersOverTLS() throws {
        let up = try TestUpstream()
        let p = try proxy(up) {
            $0.limits.maxHeaderSize = 1024
            $0.limits.maxBodySize = 100
        }
        defer { p.stop() }
        let answers = [
            "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n",
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n",
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        ].map { raw -> Int in
            guard let c = try? TLSRawClient(port: p.port, ca: certs.ca) else { return -1 }
            defer { c.close() }
            c.send(raw)
            return c.response()?.status ?? 0
        }
        #expect(answers == [431, 413, 400])
        #expect(up.requests.isEmpty)
    }

    @Test func aDrainFinishesTheExchangeInFlightOverTLS() throws {
        let up = try TestUpstream { req in .delay(0.5, TestUpstream.echo(req)) }
        let p = try proxy(up)
        defer { p.stop() }
        let c = try TLSRawClient(port: p.port, ca: certs.ca)
        defer { c.close() }
        c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.15)
        let stopper = Thread { p.server.stop() }
        stopper.start()
        let r = try #require(c.response())
        #expect(r.status == 200)
        #expect(r.header("Connection") == "close", "answered, then closed: the proxy is draining")
    }
}

import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Certificates made with the `openssl` command line once per test process, in a temporary directory: a CA, a
/// good leaf for `localhost` and `127.0.0.1`, the same leaf expired, one for another host name, a self-signed
/// one nobody trusts, and a client certificate from the CA (for mTLS).
public final class TestCertificates: Sendable {
    public let dir: String
    public var ca: String { dir + "/ca.pem" }
    public var leaf: String { dir + "/leaf.pem" }
    public var leafKey: String { dir + "/leaf.key" }
    public var expired: String { dir + "/expired.pem" }
    public var otherHost: String { dir + "/other.pem" }
    public var otherHostKey: String { dir + "/other.key" }
    public var selfSigned: String { dir + "/self.pem" }
    public var selfSignedKey: String { dir + "/self.key" }
    public var client: String { dir + "/client.pem" }
    public var clientKey: String { dir + "/client.key" }

    public static let shared: TestCertificates = {
        do { return try TestCertificates() } catch { fatalError("cannot make test certificates: \(error)") }
    }()

    private init() throws {
        dir = NSTemporaryDirectory() + "etag-proxy-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try Self.openssl(
            ["req", "-x509"] + ec + [
                "-keyout", dir + "/ca.key", "-out", ca, "-subj", "/CN=etag-proxy test CA", "-days", "3",
            ])
        try sign("leaf", cn: "localhost", san: "DNS:localhost,IP:127.0.0.1", days: "3")
        try sign("other", cn: "other.example", san: "DNS:other.example", days: "3")
        // Expired yesterday: the leaf's request signed again with a negative validity.
        try Self.openssl([
            "x509", "-req", "-in", dir + "/leaf.csr", "-CA", ca, "-CAkey", dir + "/ca.key", "-CAcreateserial",
            "-out", expired, "-days", "-1", "-extfile", dir + "/leaf.ext",
        ])
        try Self.openssl(
            ["req", "-x509"] + ec + [
                "-keyout", selfSignedKey, "-out", selfSigned, "-subj", "/CN=localhost", "-days", "3",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ])
        try sign("client", cn: "etag-proxy test client", san: "DNS:client.example", days: "3")
    }

    private func sign(_ name: String, cn: String, san: String, days: String) throws {
        let ext = dir + "/\(name).ext"
        try "subjectAltName=\(san)\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/\(name).key",
            "-out", dir + "/\(name).csr", "-subj", "/CN=\(cn)",
        ])
        try Self.openssl([
            "x509", "-req", "-in", dir + "/\(name).csr", "-CA", ca, "-CAkey", dir + "/ca.key", "-CAcreateserial",
            "-out", dir + "/\(name).pem", "-days", days, "-extfile", ext,
        ])
    }

    private static func openssl(_ args: [String]) throws {
        let r = try runProcess("/usr/bin/openssl", args)
        guard r.status == 0 else { throw TestError("openssl \(args.prefix(2).joined(separator: " ")): \(r.err)") }
    }
}

/// A TLS server context for `TestUpstream`: a certificate and key, optionally requiring a client certificate
/// issued by `clientCA`. Counts the handshakes it completed, how many resumed a session, and the failures.
public final class TestTLSServer: @unchecked Sendable {
    let ctx: OpaquePointer
    private let lock = NSLock()
    private var _handshakes = 0
    private var _resumed = 0
    private var _failures = 0

    /// - Parameter onlyTLS12: the server speaks TLS 1.2 at most (for version mismatches).
    public init(cert: String, key: String, clientCA: String? = nil, onlyTLS12: Bool = false) throws {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TestError("SSL_CTX_new") }
        self.ctx = ctx
        if onlyTLS12 { _ = etag_ssl_ctx_set_max_version(ctx, TLS1_2_VERSION) }
        guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1,
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1
        else { throw TestError("cannot load \(cert) / \(key)") }
        let sid: [UInt8] = Array("etag-proxy-tests".utf8)
        SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
        if let clientCA {
            SSL_CTX_load_verify_locations(ctx, clientCA, nil)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }

    public var handshakes: Int { lock.withLock { _handshakes } }
    public var resumed: Int { lock.withLock { _resumed } }
    public var failures: Int { lock.withLock { _failures } }

    /// Completes the server side of a handshake on a connected blocking socket; nil when it fails.
    func accept(_ fd: Int32) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        SSL_set_fd(ssl, fd)
        guard SSL_accept(ssl) == 1 else {
            SSL_free(ssl)
            lock.withLock { _failures += 1 }
            return nil
        }
        let reused = SSL_session_reused(ssl) == 1
        lock.withLock {
            _handshakes += 1
            if reused { _resumed += 1 }
        }
        return ssl
    }
}

/// A blocking TLS client connection for tests (the proxy's TLS listener), reading and writing like `RawClient`.
public final class TLSRawClient {
    public let fd: Int32
    public let ssl: OpaquePointer
    public let reader: SocketReader
    private let ctx: OpaquePointer

    /// Connects and completes the handshake, trusting `ca`; offers `session` for resumption when given.
    public init(port: Int, ca: String, session: OpaquePointer? = nil, timeout: Double = 10) throws {
        // OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a write to a connection the proxy closed must
        // not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        fd = try Sockets.connect(port: port, timeout: timeout)
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TestError("SSL_CTX_new") }
        self.ctx = ctx
        SSL_CTX_load_verify_locations(ctx, ca, nil)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        guard let ssl = SSL_new(ctx) else { throw TestError("SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        SSL_set1_host(ssl, "127.0.0.1")
        if let session { SSL_set_session(ssl, session) }
        reader = SocketReader(fd: fd, ssl: ssl)
        guard SSL_connect(ssl) == 1 else {
            SSL_free(ssl)
            SSL_CTX_free(ctx)
            Glibc.close(fd)
            throw TestError("TLS handshake with the proxy failed")
        }
    }

    public func send(_ s: String) { _ = TLSIO.writeAll(ssl, Array(s.utf8)) }
    /// The session to resume with (the caller frees it with `SSL_SESSION_free`); after a response, so that TLS
    /// 1.3 tickets have arrived.
    public func session() -> OpaquePointer? { SSL_get1_session(ssl) }
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }
    /// The subject of the certificate the proxy presented.
    public var peerSubject: String {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return "" }
        defer { X509_free(cert) }
        guard let line = X509_NAME_oneline(X509_get_subject_name(cert), nil, 0) else { return "" }
        defer { CRYPTO_free(line, #file, #line) }
        return String(cString: line)
    }
    public func response(head: Bool = false) -> HTTPMessage? { reader.readResponse(head: head) }

    /// Ends with close_notify (OpenSSL would otherwise mark the session not resumable).
    public func close() {
        SSL_shutdown(ssl)
        SSL_free(ssl)
        SSL_CTX_free(ctx)
        Glibc.close(fd)
    }
}

enum TLSIO {
    static func writeAll(_ ssl: OpaquePointer, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { return false }
            off += Int(n)
        }
        return true
    }
}

import COpenSSL
import EtagCore
#if canImport(Glibc)
import Glibc
#endif

/// The OpenSSL contexts a configuration asks for: one for the client listener (`tls.*`), one for an `https://`
/// upstream (`upstream_tls.*`). Built when the proxy starts, by `--check-config` and on every reload (so a
/// renewed certificate is read again); a problem names the key and the file.
///
/// Ownership: each `SSL_CTX` is owned by its `TLSContext` and freed with it. OpenSSL lets many threads make
/// connections from one context at once, so every worker shares them; a connection's `SSL` holds its own
/// reference to its context, so a reload may replace a context while its connections live on.
final class TLSContexts: Sendable {
    let listener: TLSContext?
    let upstream: TLSContext?

    static let none = TLSContexts()

    private init() {
        listener = nil
        upstream = nil
    }

    init(config: ProxyConfig) throws(TLSSetupError) {
        listener = config.tls.enabled || config.tls.key != nil ? try TLSContext(listener: config.tls) : nil
        upstream = config.upstream.isTLS ? try TLSContext(upstream: config.upstreamTLS) : nil
    }
}

/// A TLS configuration problem, named by its key: `tls.cert: cannot read /x.pem: No such file or directory`.
public struct TLSSetupError: Error, CustomStringConvertible {
    public let key: String
    public let message: String
    public var description: String { "\(key): \(message)" }
}

/// One `SSL_CTX`. See `TLSContexts` for who shares it.
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    /// The upstream's certificate is checked (false only by `upstream_tls.verify: false`).
    let verifies: Bool

    /// The listener's: certificate chain and key, TLS 1.2+ (or 1.3+), ALPN `http/1.1`, server-side session
    /// tickets (OpenSSL's default, so a returning client resumes without a full handshake).
    init(listener tls: ProxyConfig.ListenerTLS) throws(TLSSetupError) {
        guard let cert = tls.cert else { throw TLSSetupError(key: "tls.cert", message: "missing (tls.key is set)") }
        guard let key = tls.key else { throw TLSSetupError(key: "tls.key", message: "missing (tls.cert is set)") }
        ctx = try Self.newContext(TLS_server_method(), minVersion: tls.minVersion, key: "tls.min_version")
        verifies = false
        // Every stored property is set: a throw from here on runs deinit, which frees the context.
        try Self.loadIdentity(ctx, cert: cert, key: key, certKey: "tls.cert", keyKey: "tls.key")
        etag_ssl_ctx_select_http11(ctx)
        // Forward secrecy with an AEAD for TLS 1.2 (TLS 1.3's suites are all of that kind); the server's order.
        SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20")
        etag_ssl_ctx_server_options(ctx)
    }

    /// The upstream's: verification against the system store (or `ca_file`) on by default, the host checked per
    /// connection (`TLSChannel`), an optional client certificate, and a client session cache fed by the
    /// new-session callback (`TLSSessionCache`).
    init(upstream tls: ProxyConfig.UpstreamTLS) throws(TLSSetupError) {
        ctx = try Self.newContext(TLS_client_method(), minVersion: tls.minVersion, key: "upstream_tls.min_version")
        verifies = tls.verify
        // Every stored property is set: a throw from here on runs deinit, which frees the context.
        if let ca = tls.caFile {
            try Self.requireReadable(ca, key: "upstream_tls.ca_file")
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
                throw TLSSetupError(
                    key: "upstream_tls.ca_file", message: "no certificate in \(ca): \(Self.lastError())")
            }
        } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
            throw TLSSetupError(key: "upstream_tls.ca_file", message: "the system certificate store cannot be read")
        }
        switch (tls.cert, tls.key) {
        case (let cert?, let key?):
            try Self.loadIdentity(ctx, cert: cert, key: key, certKey: "upstream_tls.cert", keyKey: "upstream_tls.key")
        case (nil, nil): break
        case (nil, _): throw TLSSetupError(key: "upstream_tls.cert", message: "missing (upstream_tls.key is set)")
        case (_, nil): throw TLSSetupError(key: "upstream_tls.key", message: "missing (upstream_tls.cert is set)")
        }
        SSL_CTX_set_verify(ctx, tls.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        etag_ssl_ctx_set_client_session_cache(ctx)
        SSL_CTX_sess_set_new_cb(ctx, TLSSessionCache.newSessionCallback)
    }

    deinit { SSL_CTX_free(ctx) }

    private static func newContext(
        _ method: OpaquePointer?, minVersion: TLSVersion, key: String
    ) throws(TLSSetupError) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(method) else {
            throw TLSSetupError(key: key, message: "OpenSSL cannot make a context: \(lastError())")
        }
        let version = minVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        _ = etag_ssl_ctx_set_min_version(ctx, version)
        etag_ssl_ctx_set_modes(ctx)
        return ctx
    }

    private static func loadIdentity(
        _ ctx: OpaquePointer, cert: String, key: String, certKey: String, keyKey: String
    ) throws(TLSSetupError) {
        try requireReadable(cert, key: certKey)
        try requireReadable(key, key: keyKey)
        guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
            throw TLSSetupError(key: certKey, message: "no PEM certificate in \(cert): \(lastError())")
        }
        let mismatch = TLSSetupError(key: keyKey, message: "key does not match certificate (\(key), \(cert))")
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
            let reason = lastError()
            if reason.contains("mismatch") { throw mismatch }
            throw TLSSetupError(key: keyKey, message: "no PEM private key in \(key): \(reason)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else { throw mismatch }
    }

    /// `cannot read /x.pem: No such file or directory`, before OpenSSL's less plain words for it.
    private static func requireReadable(_ path: String, key: String) throws(TLSSetupError) {
        guard let f = fopen(path, "r") else {
            throw TLSSetupError(key: key, message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        fclose(f)
    }

    /// The reason of the first OpenSSL error queued on this thread, usually the cause (the queue is cleared).
    static func lastError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0, let reason = ERR_reason_error_string(code) else { return "unknown OpenSSL error" }
        return String(cString: reason)
    }
}

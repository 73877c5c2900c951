import COpenSSL

/// The upstream TLS session a worker resumes with: a new upstream connection offers the newest session (or
/// TLS 1.3 ticket) the upstream gave this worker, so it costs an abbreviated handshake instead of a full one
/// (RFC 8446 §2.2, RFC 5077).
///
/// Ownership: one per worker, touched only by its thread (OpenSSL calls the new-session callback inside the
/// `SSL_do_handshake` / `SSL_read` of a connection on that thread). Holds one reference to its session; each
/// connection's `SSL` takes its own when offered it. The connection's `SSL` finds the cache through its ex-data
/// slot 0, set by `TLSChannel`, unretained: the worker outlives its connections.
final class TLSSessionCache {
    private var session: OpaquePointer?
    /// The context the session belongs to, held so that its address cannot be reused: a session is offered only
    /// to connections of the same context, so a reload that changes the upstream's TLS settings (its trust
    /// anchors…) never resumes a session its new settings did not verify.
    private var context: TLSContext?

    init() {}

    deinit { if let session { SSL_SESSION_free(session) } }

    /// Offers the cached session to a new connection of `context`.
    func offer(to ssl: OpaquePointer, context c: TLSContext) {
        if context !== c {
            clear()
            context = c
            return
        }
        if let session { SSL_set_session(ssl, session) }
    }

    /// Takes ownership of a session the upstream issued (the callback's reference); false when it came from
    /// another context than the current one.
    func store(_ s: OpaquePointer, ctx: OpaquePointer?) -> Bool {
        guard let context, context.ctx == ctx else { return false }
        if let session { SSL_SESSION_free(session) }
        session = s
        return true
    }

    private func clear() {
        if let session { SSL_SESSION_free(session) }
        session = nil
    }

    /// OpenSSL's new-session callback: returning 1 keeps the reference it passes.
    static let newSessionCallback: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
        guard let ssl, let session, let raw = SSL_get_ex_data(ssl, 0) else { return 0 }
        let cache = Unmanaged<TLSSessionCache>.fromOpaque(raw).takeUnretainedValue()
        return cache.store(session, ctx: SSL_get_SSL_CTX(ssl)) ? 1 : 0
    }
}

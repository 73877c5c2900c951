import COpenSSL

/// One TLS connection's OpenSSL state, with no I/O of its own: `TCPConnection` hands it the ciphertext a read
/// brought (`inbound`, read by OpenSSL through the channel's BIO without a copy of ours) and sends the ciphertext
/// OpenSSL wrote (`outbound`, collected by the same BIO). Plaintext comes out of `read` and goes in by `write`.
///
/// Ownership: owns its `SSL` (which owns the BIO) and the outbound buffer; freed with the connection, on the
/// worker thread that made it. The BIO refers back to the channel unretained (the channel outlives its `SSL`).
final class TLSChannel {
    enum Step: Equatable {
        case done
        /// More ciphertext is needed from the peer.
        case wantMore
        /// The handshake or the record layer failed; the detail names the cause.
        case failed(String)
    }

    enum ReadResult: Equatable {
        case bytes(Int)
        case wantMore
        /// The peer sent close_notify.
        case closed
        case failed(String)
    }

    let ssl: OpaquePointer
    private(set) var handshakeDone = false
    /// Ciphertext from the socket that OpenSSL has not read yet; valid only during one `TCPConnection` read.
    var inbound = UnsafeRawBufferPointer.empty
    private var out: UnsafeMutableRawPointer?
    private var outCapacity = 0
    private(set) var outCount = 0
    private let isClient: Bool
    private let verifies: Bool

    /// A listener's connection (the client speaks first).
    init?(server context: TLSContext) {
        guard let bio = BIO_new(ChannelBIO.method) else { return nil }
        guard let ssl = SSL_new(context.ctx) else {
            BIO_free(bio)
            return nil
        }
        self.ssl = ssl
        isClient = false
        verifies = false
        attach(bio)
        SSL_set_accept_state(ssl)
    }

    /// An upstream connection: SNI and the certificate's host name are `serverName` (RFC 6066 §3: no SNI for an
    /// IP literal, whose check is against the certificate's IP addresses), ALPN offers `http/1.1`, and the
    /// worker's cached session is offered for resumption.
    init?(client context: TLSContext, serverName: String, sessions: TLSSessionCache) {
        guard let bio = BIO_new(ChannelBIO.method) else { return nil }
        guard let ssl = SSL_new(context.ctx) else {
            BIO_free(bio)
            return nil
        }
        self.ssl = ssl
        isClient = true
        verifies = context.verifies
        attach(bio)
        SSL_set_connect_state(ssl)
        if !Self.isIPLiteral(serverName) { _ = etag_ssl_set_sni(ssl, serverName) }
        if verifies { SSL_set1_host(ssl, serverName) }
        _ = etag_ssl_offer_http11(ssl)
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(sessions).toOpaque())
        sessions.offer(to: ssl, context: context)
    }

    deinit {
        // As if close_notify had been exchanged: OpenSSL would otherwise mark the session (the one the worker's
        // cache holds) not resumable when a connection ends without it — a TLS 1.0 rule that TLS 1.1 dropped
        // (RFC 4346 §7.2.1); nginx ends its connections the same way.
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        SSL_free(ssl)
        out?.deallocate()
    }

    /// The SSL takes the BIO's one reference (the same BIO reads and writes).
    private func attach(_ bio: OpaquePointer) {
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)
    }

    /// Whether this session was resumed (no full handshake).
    var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// Drives the handshake with what `inbound` holds.
    func handshake() -> Step {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            handshakeDone = true
            if isClient, let problem = alpnProblem() { return .failed(problem) }
            return .done
        }
        let e = SSL_get_error(ssl, rc)
        if e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE { return .wantMore }
        return .failed(failureDetail())
    }

    /// Decrypts into `buffer` from what `inbound` holds.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wantMore
        case SSL_ERROR_ZERO_RETURN: return .closed
        default: return .failed(failureDetail())
        }
    }

    /// Encrypts `bytes` into `outbound` whole (the BIO never refuses a write).
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var at = 0
        while at < bytes.count {
            ERR_clear_error()
            let piece = min(bytes.count - at, 1 << 30)
            let n = SSL_write(ssl, bytes.baseAddress! + at, Int32(piece))
            guard n > 0 else { return false }
            at += Int(n)
        }
        return true
    }

    private(set) var sentCloseNotify = false

    /// Queues close_notify (RFC 8446 §6.1) when the handshake has finished.
    func shutdown() {
        guard handshakeDone, !sentCloseNotify else { return }
        sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    /// The ciphertext waiting to be sent.
    var outbound: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: out, count: outCount) }

    /// `outbound` has been handed to the socket (or copied by it): the buffer is reused; a large one is freed.
    func outboundSent() {
        outCount = 0
        if outCapacity > 256 * 1024 {
            out?.deallocate()
            out = nil
            outCapacity = 0
        }
    }

    // MARK: the BIO's side

    fileprivate func bioRead(_ into: UnsafeMutablePointer<CChar>, _ len: Int) -> Int {
        let n = min(len, inbound.count)
        guard n > 0 else { return 0 }
        UnsafeMutableRawPointer(into).copyMemory(from: inbound.baseAddress!, byteCount: n)
        inbound = UnsafeRawBufferPointer(rebasing: inbound[n...])
        return n
    }

    fileprivate func bioWrite(_ from: UnsafePointer<CChar>, _ len: Int) {
        if outCount + len > outCapacity {
            let capacity = max(16 * 1024, (outCount + len) * 2)
            let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            if let out, outCount > 0 { grown.copyMemory(from: out, byteCount: outCount) }
            out?.deallocate()
            out = grown
            outCapacity = capacity
        }
        (out! + outCount).copyMemory(from: from, byteCount: len)
        outCount += len
    }

    // MARK: what went wrong

    /// `certificate verify failed: unable to get local issuer certificate`, `certificate verify failed: hostname
    /// mismatch`, or OpenSSL's reason (`unsupported protocol`, `tlsv13 alert certificate required`…).
    private func failureDetail() -> String {
        if isClient && verifies {
            let result = SSL_get_verify_result(ssl)
            if result != X509_V_OK, let text = X509_verify_cert_error_string(result) {
                ERR_clear_error()
                return "certificate verify failed: \(String(cString: text))"
            }
        }
        return TLSContext.lastError()
    }

    /// An upstream that picked a protocol other than the one offered (RFC 7301 §3.2).
    private func alpnProblem() -> String? {
        var proto: UnsafePointer<UInt8>?
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &proto, &len)
        guard let proto, len > 0 else { return nil }
        let name = String(decoding: UnsafeBufferPointer(start: proto, count: Int(len)), as: UTF8.self)
        return name == "http/1.1" ? nil : "the upstream chose the application protocol \(name), not http/1.1"
    }

    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || (!host.isEmpty && host.allSatisfy { $0 == "." || $0.isNumber })
    }
}

/// The BIO type between OpenSSL and a `TLSChannel`: reads come from the channel's `inbound`, writes go to its
/// `outbound`. One method table for the process, made on first use.
private enum ChannelBIO {
    nonisolated(unsafe) static let method: OpaquePointer = {
        let m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "etag-proxy channel")!
        BIO_meth_set_write(m) { bio, data, len in
            guard let bio, let data, len > 0 else { return 0 }
            etag_bio_clear_retry(bio)
            channel(bio).bioWrite(data, Int(len))
            return len
        }
        BIO_meth_set_read(m) { bio, data, len in
            guard let bio, let data, len > 0 else { return 0 }
            etag_bio_clear_retry(bio)
            let n = channel(bio).bioRead(data, Int(len))
            if n == 0 {
                etag_bio_set_retry_read(bio)
                return -1
            }
            return Int32(n)
        }
        BIO_meth_set_ctrl(m) { _, cmd, _, _ in
            cmd == BIO_CTRL_FLUSH ? 1 : 0
        }
        return m
    }()

    static func channel(_ bio: OpaquePointer) -> TLSChannel {
        Unmanaged<TLSChannel>.fromOpaque(BIO_get_data(bio)).takeUnretainedValue()
    }
}

internal import CLibUV

/// TLS under a connection: the ciphertext a read brings goes through the connection's `TLSChannel`, whose
/// plaintext lands in the connection's input as a plaintext read's bytes would; writes are encrypted and the
/// ciphertext sent at once (TLS connections skip the end-of-iteration write batching). The subclasses see
/// plaintext only, plus `tlsHandshakeCompleted` and `tlsFailed`. Worker thread only.
extension TCPConnection {
    /// Ciphertext from the socket (in the worker's read buffer: OpenSSL takes all of it before this returns,
    /// keeping a partial record in its own buffer).
    final func tlsReceived(_ t: TLSChannel, _ bytes: UnsafeRawBufferPointer) {
        t.inbound = bytes
        defer { t.inbound = .empty }
        if !t.handshakeDone {
            let step = t.handshake()
            guard flushTLS(t) else { return }
            switch step {
            case .wantMore: return
            case .failed(let detail): return tlsFailed(detail)
            case .done:
                tlsHandshakeCompleted()
                if isClosing { return }
            }
        }
        var closedByPeer = false
        reading: while !isClosing {
            switch t.read(into: input.reserveTail(16 * 1024)) {
            case .bytes(let n): input.commit(n)
            case .wantMore: break reading
            case .closed:
                closedByPeer = true
                break reading
            case .failed(let detail):
                _ = flushTLS(t)  // the alert, if any
                return tlsFailed(detail)
            }
        }
        // Post-handshake messages OpenSSL answers (a key update) go out now.
        guard flushTLS(t) else { return }
        processBuffered()
        // close_notify (RFC 8446 §6.1): the peer's end of data, like a FIN.
        if closedByPeer && !isClosing { didReachEOF() }
    }

    /// Encrypts the parts (one record or more each) and sends the ciphertext.
    final func tlsWrite(
        _ t: TLSChannel, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer,
        _ c: UnsafeRawBufferPointer, _ d: UnsafeRawBufferPointer
    ) {
        for part in [a, b, c, d] where part.count > 0 {
            guard t.write(part) else { return tlsFailed("TLS write failed: \(TLSContext.lastError())") }
        }
        _ = flushTLS(t)
    }

    /// Sends what OpenSSL has written (handshake messages, records, alerts).
    /// - Returns: false when the socket failed (the connection has been told).
    @discardableResult
    final func flushTLS(_ t: TLSChannel) -> Bool {
        let out = t.outbound
        guard out.count > 0 else { return true }
        let rc = transmit(out, total: out.count)
        t.outboundSent()
        if rc != 0 {
            didFail(rc)
            return false
        }
        return true
    }
}

internal import CLibUV

/// The far end of a connection that has no socket: the socket-free exchange driver's stand-in for a client or an
/// upstream (SwiftNIO's EmbeddedChannel role). What the connection writes is collected in `received`; `send`
/// hands the connection bytes as a read would, `sendEOF` and `reset` end it as a peer would. In service no
/// connection has one.
///
/// Ownership: the connection holds its peer strongly; the peer refers back `weak`, so it may outlive the
/// connection (a test reads what was written after the close). Touched only by the thread running the loop.
final class MemoryPeer {
    private(set) var received: [UInt8] = []
    /// The connection sent its FIN (a graceful close after its last write).
    private(set) var connectionShutDown = false
    /// The connection closed its handles (with or without a FIN first).
    private(set) var connectionClosed = false
    /// The connection closed with a reset (an answer cut short).
    private(set) var connectionReset = false
    weak var connection: TCPConnection?

    init() {}

    /// The bytes written since the last call.
    func takeReceived() -> [UInt8] {
        defer { received = [] }
        return received
    }

    /// Bytes from the peer, as if read from the socket (kept until the connection reads, when it is paused).
    func send(_ bytes: [UInt8]) {
        guard let c = connection, !c.isClosing else { return }
        bytes.withUnsafeBytes { c.input.append($0) }
        if c.isReading { c.processBuffered() }
    }

    /// The peer closes its side.
    func sendEOF() {
        guard let c = connection, !c.isClosing else { return }
        c.didReachEOF()
    }

    /// The peer resets the connection.
    func reset() {
        guard let c = connection, !c.isClosing else { return }
        c.didFail(UV_ECONNRESET.rawValue)
    }

    // The connection's side.

    func collect(_ parts: UnsafeRawBufferPointer...) {
        for p in parts where p.count > 0 { received.append(contentsOf: p) }
    }

    func connectionDidShutDown() { connectionShutDown = true }
    func connectionDidClose() { connectionClosed = true }
    func connectionDidReset() { connectionReset = true }
}

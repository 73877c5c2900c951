/// The socket-free driver's upstream (tests): each connection the pool opens is handed a `MemoryPeer` instead of
/// a socket, and the test answers what arrives on it. Touched only by the thread running the worker's loop.
final class MemoryUpstream {
    /// Connections are refused (the upstream is down).
    var refusesConnections = false
    /// Every peer handed out, in order of connection.
    private(set) var peers: [MemoryPeer] = []

    init() {}

    /// A new upstream connection: its peer, or nil when refused.
    func accept(_ connection: TCPConnection) -> MemoryPeer? {
        guard !refusesConnections else { return nil }
        let peer = MemoryPeer()
        peer.connection = connection
        peers.append(peer)
        return peer
    }
}

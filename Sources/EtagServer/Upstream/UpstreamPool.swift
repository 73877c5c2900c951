/// Idle keep-alive upstream connections of one worker, most recently used first. Worker thread only; the
/// connections in `idle` are retained by their own handles as well (see `TCPConnection`).
final class UpstreamPool {
    unowned(unsafe) let worker: Worker  // the worker outlives every connection on its loop
    /// Worker thread only; nothing is called back while it is accessed: no dynamic exclusivity check.
    @exclusivity(unchecked) private var idle: [UpstreamConnection] = []
    /// Where new connections go instead of the upstream's address, for the socket-free driver (tests).
    var memoryUpstream: MemoryUpstream?

    /// Upstream connections of this worker not yet closed, idle or busy.
    private var open = 0
    /// A connection whose next answer is a pipelined GET, offered while the exchange before it ends (see
    /// `UpstreamConnection.offered`); the offer never outlives that call.
    private var offered: UpstreamConnection?

    init(worker: Worker) {
        self.worker = worker
    }

    func connectionOpened() {
        open += 1
        worker.metrics.set(.upstreamConnections, open)
    }

    func connectionClosed() {
        open -= 1
        worker.metrics.set(.upstreamConnections, open)
    }

    private func idleChanged() { worker.metrics.set(.upstreamIdle, idle.count) }

    /// An idle connection, or a new one (it connects when its exchange begins).
    func acquire() -> UpstreamConnection {
        while let c = idle.popLast() {
            c.inPool = false
            if !c.isClosing {
                idleChanged()
                return c
            }
        }
        idleChanged()
        return UpstreamConnection(worker: worker)
    }

    func offer(_ c: UpstreamConnection) { offered = c }

    func withdrawOffer(_ c: UpstreamConnection) {
        if offered === c { offered = nil }
    }

    /// The offered connection whose next answer is the GET `request` (the same bytes, sent pipelined), or nil:
    /// the caller sends its request on a connection of its own.
    func takePipelined(_ request: [UInt8]) -> UpstreamConnection? {
        guard let c = offered, !c.isClosing, c.offered == request else { return nil }
        offered = nil
        return c
    }

    /// Takes back a connection whose exchange ended cleanly; closes it when the pool is full or draining.
    func release(_ c: UpstreamConnection) {
        guard !worker.draining, idle.count < worker.settings.poolKeepalive, !c.isClosing,
            c.upstreamGeneration == worker.upstreamGeneration
        else {
            c.close()
            return
        }
        c.parkIdle()
        idle.append(c)
        idleChanged()
    }

    func remove(_ c: UpstreamConnection) {
        c.inPool = false
        if let i = idle.firstIndex(where: { $0 === c }) {
            idle.remove(at: i)
            idleChanged()
        }
    }

    func closeIdle() {
        let all = idle
        idle = []
        idleChanged()
        for c in all {
            c.inPool = false
            c.close()
        }
    }
}

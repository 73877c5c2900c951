/// Idle keep-alive upstream connections of one worker, most recently used first. Worker thread only.
final class UpstreamPool {
    unowned(unsafe) let worker: Worker  // the worker outlives every connection on its loop
    private var idle: [UpstreamConnection] = []

    init(worker: Worker) {
        self.worker = worker
    }

    /// An idle connection (reused: true) or a new one that is connecting (reused: false).
    func acquire() -> (UpstreamConnection, reused: Bool) {
        while let c = idle.popLast() {
            c.inPool = false
            if !c.isClosing { return (c, true) }
        }
        let c = UpstreamConnection(worker: worker)
        return (c, false)
    }

    /// Takes back a connection whose exchange ended cleanly; closes it when the pool is full or draining.
    func release(_ c: UpstreamConnection) {
        c.owner = nil
        c.exchanges += 1
        c.receivedResponseBytes = false
        guard !worker.draining, idle.count < worker.settings.poolKeepalive, !c.isClosing else {
            c.close()
            return
        }
        c.inPool = true
        c.startReading()  // to notice the upstream closing it
        c.arm(.idle, worker.settings.timeouts.upstreamIdle)
        idle.append(c)
    }

    func remove(_ c: UpstreamConnection) {
        c.inPool = false
        if let i = idle.firstIndex(where: { $0 === c }) { idle.remove(at: i) }
    }

    func closeIdle() {
        let all = idle
        idle = []
        for c in all {
            c.inPool = false
            c.close()
        }
    }
}

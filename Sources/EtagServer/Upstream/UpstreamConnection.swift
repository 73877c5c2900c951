internal import CLibUV
import EtagHTTP

/// One keep-alive connection to the upstream. While an exchange uses it, `owner` is that client connection;
/// idle, it sits in its worker's `UpstreamPool` and only watches for the upstream closing it.
/// Worker thread only.
final class UpstreamConnection: TCPConnection {
    enum TimerPurpose { case connect, response, idle }

    var owner: ClientConnection?
    private(set) var connected = false
    private var pendingUntilConnected: [UInt8] = []
    /// Exchanges completed on this connection (0: fresh).
    var exchanges = 0
    /// Whether any byte of the current response has arrived.
    var receivedResponseBytes = false
    var inPool = false
    private var timerPurpose = TimerPurpose.connect

    /// Starts connecting to the worker's upstream address.
    func connect() {
        let req = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_tcp_nodelay(tcp, 1)
        let rc = worker.upstreamAddress.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            uv_tcp_connect(req, tcp, $0, onUpstreamConnect)
        }
        if rc != 0 {
            req.deallocate()
            // Report on the next loop turn would be cleaner; the caller handles a synchronous failure.
            connectFailed(rc)
            return
        }
        arm(.connect, worker.settings.timeouts.connect)
    }

    func didConnect(_ status: Int32) {
        guard !isClosing else { return }
        guard status == 0 else {
            connectFailed(status)
            return
        }
        connected = true
        startReading()
        arm(.response, worker.settings.timeouts.upstream)
        if !pendingUntilConnected.isEmpty {
            let bytes = pendingUntilConnected
            pendingUntilConnected = []
            write(bytes)
            // Fully written at once: no write callback will report the drain.
            if queuedBytes == 0 && !isClosing { didDrain() }
        }
    }

    private func connectFailed(_ code: Int32) {
        let o = owner
        owner = nil
        close()
        o?.upstreamUnreachable(self, code)
    }

    /// Bytes not yet accepted by the socket (for backpressure).
    var backlog: Int { queuedBytes + pendingUntilConnected.count }

    func send(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = .empty, _ c: UnsafeRawBufferPointer = .empty) {
        if connected {
            write(a, b, c)
        } else {
            pendingUntilConnected.append(contentsOf: a)
            pendingUntilConnected.append(contentsOf: b)
            pendingUntilConnected.append(contentsOf: c)
        }
    }

    func arm(_ purpose: TimerPurpose, _ ms: Int) {
        timerPurpose = purpose
        startTimer(ms)
    }

    override func consume(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let owner else {
            // Bytes on an idle connection: the upstream is confused; do not reuse it.
            close()
            return bytes.count
        }
        receivedResponseBytes = true
        return owner.upstreamBytes(self, bytes)
    }

    override func didReachEOF() {
        guard let owner else { return close() }
        owner.upstreamEnded(self, error: nil)
    }

    override func didFail(_ code: Int32) {
        guard let owner else { return close() }
        owner.upstreamEnded(self, error: code)
    }

    override func didDrain() {
        owner?.upstreamDrained()
    }

    override func timerFired() {
        switch timerPurpose {
        case .idle:
            close()
        case .connect, .response:
            guard let owner else { return close() }
            owner.upstreamTimedOut(self, connecting: timerPurpose == .connect)
        }
    }

    override func didClose() {
        if inPool { worker.pool.remove(self) }
        owner = nil
    }
}

private func onUpstreamConnect(_ req: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    let c = Unmanaged<UpstreamConnection>.fromOpaque(req!.pointee.data).takeUnretainedValue()
    req!.deallocate()
    c.didConnect(status)
}

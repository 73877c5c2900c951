internal import CLibUV

/// A TCP handle with a timer, an input buffer and a write path that tries `uv_try_write` first and queues
/// only the unwritten tail. Base of client and upstream connections.
///
/// Ownership: created on a worker thread and touched only there. `Unmanaged.passRetained(self)` is stored in
/// both handles' `data`; the retain is released once, when the second of the two close callbacks has run.
class TCPConnection {
    unowned(unsafe) let worker: Worker  // the worker outlives every connection on its loop
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    let timer: UnsafeMutablePointer<uv_timer_t>
    /// Mutated only by this class's read path on the worker thread, never passed `inout` across a callback:
    /// no dynamic exclusivity check (one per read otherwise).
    @exclusivity(unchecked) var input = InputBuffer()
    /// Bytes handed to libuv but not yet written, including those held in `DeferredWrites`.
    var queuedBytes = 0
    /// Bytes held in the worker's `DeferredWrites` for this connection.
    var deferredBytes = 0
    /// Whether small writes are held until the end of the loop iteration (client connections).
    let defersWrites: Bool
    private(set) var isClosing = false
    private(set) var isReading = false
    private var openHandles = 2
    /// In place of the socket, for the socket-free exchange driver (tests): the handle is never opened, writes go
    /// to the peer, reads come from it. Nil in service: one branch per write.
    var memoryPeer: MemoryPeer?
    /// TLS over the socket (see `TCPConnection+TLS`); nil for plaintext: one branch per read and per write.
    var tls: TLSChannel?
    /// The owner of the storage the pending read goes into in place (see `readInPlace`); nil otherwise.
    private var inPlaceOwner: AnyObject?
    /// Where bytes queued in libuv are counted (`limits.held_memory`): client connections only.
    var queuedMemory: HeldMemoryCredit?

    init(worker: Worker, defersWrites: Bool = false) {
        self.worker = worker
        self.defersWrites = defersWrites
        tcp = .allocate(capacity: 1)
        timer = .allocate(capacity: 1)
        uv_tcp_init(worker.loop, tcp)
        uv_timer_init(worker.loop, timer)
        let me = Unmanaged.passRetained(self).toOpaque()
        tcp.pointee.data = me
        timer.pointee.data = me
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { etag_uv_stream(tcp) }

    /// The socket's descriptor (-1 before it has one).
    var socketFD: Int32 {
        var fd: uv_os_fd_t = -1
        _ = uv_fileno(etag_uv_handle(tcp), &fd)
        return fd
    }

    // MARK: reading

    func startReading() {
        guard !isReading, !isClosing else { return }
        if memoryPeer != nil {
            isReading = true
            return
        }
        if uv_read_start(stream, onAllocCallback, onReadCallback) == 0 { isReading = true }
    }

    func stopReading() {
        guard isReading else { return }
        if memoryPeer == nil { uv_read_stop(stream) }
        isReading = false
    }

    /// Where libuv reads into: storage the subclass offers for bytes that can only be body (`readInPlace`),
    /// else the worker's shared buffer when nothing is pending here (no copy unless leftovers remain), else the
    /// tail of this connection's own buffer.
    final func allocate() -> UnsafeMutableRawBufferPointer {
        inPlaceOwner = nil
        if input.isEmpty && !lingering && tls == nil, let (space, owner) = readInPlace() {
            inPlaceOwner = owner
            return space
        }
        if input.isEmpty || lingering || tls != nil { return worker.readBuffer }
        return input.reserveTail(16 * 1024)
    }

    final func didRead(_ base: UnsafeMutableRawPointer, _ n: Int) {
        if lingering { return }
        if let t = tls { return tlsReceived(t, UnsafeRawBufferPointer(start: base, count: n)) }
        if base == worker.readBuffer.baseAddress || inPlaceOwner != nil {
            // Read into the shared buffer or in place: consumed from there. Storage read into in place, or that
            // adopted the shared buffer meanwhile (`keepUntilConsumed`), stays alive until the bytes are used even
            // if the exchange lets it go meanwhile (a held body that turns into a stream).
            let view = UnsafeRawBufferPointer(start: base, count: n)
            let used = consume(view)
            if used < n, !isClosing { input.append(UnsafeRawBufferPointer(rebasing: view[used...])) }
            inPlaceOwner = nil
        } else {
            input.commit(n)
            processBuffered()
        }
    }

    /// Runs `consume` over the bytes held in this connection's own buffer.
    final func processBuffered() {
        guard !input.isEmpty, !isClosing else { return }
        let used = consume(input.view)
        if !isClosing { input.consume(used) }
    }

    /// Keeps `owner`, which now holds the bytes being consumed (it adopted the worker's read buffer), alive
    /// until they are.
    final func keepUntilConsumed(_ owner: AnyObject) { inPlaceOwner = owner }

    /// Storage the next read may go straight into, with its owner (kept alive until the read is consumed): only
    /// where every byte that read can bring belongs there. Nil: the ordinary buffers.
    func readInPlace() -> (UnsafeMutableRawBufferPointer, AnyObject)? { nil }
    /// Handles received bytes; returns how many were used. The rest is kept and offered again later.
    func consume(_ bytes: UnsafeRawBufferPointer) -> Int { bytes.count }
    /// The peer closed its side.
    func didReachEOF() {}
    /// A read or write failed (reset, broken pipe…).
    func didFail(_ code: Int32) {}
    /// Every queued write has completed.
    func didDrain() {}
    /// The timer fired.
    func timerFired() {}
    /// The handles are closed; last chance to drop references.
    func didClose() {}
    /// The TLS handshake has completed.
    func tlsHandshakeCompleted() {}
    /// The TLS handshake or record layer failed (the detail names the cause); the connection must close.
    func tlsFailed(_ detail: String) { close() }

    // MARK: writing

    /// Writes the given buffers in order; what the socket does not take now is copied and queued. A client
    /// connection's small writes are held until the end of the loop iteration (see `DeferredWrites`).
    final func write(
        _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = .empty,
        _ c: UnsafeRawBufferPointer = .empty, _ d: UnsafeRawBufferPointer = .empty
    ) {
        guard !isClosing else { return }
        let total = a.count + b.count + c.count + d.count
        guard total > 0 else { return }
        if let peer = memoryPeer { return peer.collect(a, b, c, d) }
        if let t = tls { return tlsWrite(t, a, b, c, d) }
        if defersWrites {
            if worker.deferredWrites.hold(self, (a, b, c, d), total: total) { return }
            if deferredBytes > 0 {
                let rc = worker.deferredWrites.sendNow(self)
                if rc != 0 { return didFail(rc) }
            }
        }
        let rc = transmit(a, b, c, d, total: total)
        if rc != 0 { didFail(rc) }
    }

    /// Hands the buffers to the socket now: `uv_try_write`, then `uv_write` for the tail it did not take.
    /// - Returns: 0, or the libuv error.
    final func transmit(
        _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = .empty,
        _ c: UnsafeRawBufferPointer = .empty, _ d: UnsafeRawBufferPointer = .empty,
        total: Int
    ) -> Int32 {
        var written = 0
        if queuedBytes == deferredBytes {  // nothing queued in libuv: try the socket now
            var bufs = (uvBuf(a), uvBuf(b), uvBuf(c), uvBuf(d))
            // Trailing empty parts are left out of the writev.
            let used: UInt32 = d.count > 0 ? 4 : c.count > 0 ? 3 : b.count > 0 ? 2 : 1
            let n = withUnsafeMutablePointer(to: &bufs) { p in
                p.withMemoryRebound(to: uv_buf_t.self, capacity: 4) { uv_try_write(stream, $0, used) }
            }
            if n == Int32(total) { return 0 }
            if n < 0 && n != UV_EAGAIN.rawValue { return n }
            written = max(Int(n), 0)
        }
        let remaining = total - written
        let req = WriteRequest.make(remaining)
        var skip = written
        var at = 0
        for part in [a, b, c, d] where part.count > 0 {
            if skip >= part.count {
                skip -= part.count
                continue
            }
            let piece = UnsafeRawBufferPointer(rebasing: part[skip...])
            (req.payload + at).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
            at += piece.count
            skip = 0
        }
        queuedBytes += remaining
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var buf = uv_buf_t(base: req.payload.assumingMemoryBound(to: CChar.self), len: remaining)
        let rc = uv_write(req.request, stream, &buf, 1, onWriteCallback)
        if rc != 0 {
            queuedBytes -= remaining
            req.free()
        } else {
            queuedMemory?.force(remaining)
        }
        return rc
    }

    final func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    final func writeCompleted(_ size: Int, _ status: Int32) {
        queuedBytes -= size
        queuedMemory?.give(size)
        if isClosing { return }
        if status < 0 {
            didFail(status)
        } else if queuedBytes == 0 {
            didDrain()
        }
    }

    private func uvBuf(_ p: UnsafeRawBufferPointer) -> uv_buf_t {
        uv_buf_t(base: UnsafeMutablePointer(mutating: p.baseAddress?.assumingMemoryBound(to: CChar.self)), len: p.count)
    }

    // MARK: timer

    /// When the current timeout expires (loop milliseconds), 0 for none.
    private var timerDeadline: UInt64 = 0
    /// When the libuv timer is set to fire, 0 when it is not running.
    private var timerScheduled: UInt64 = 0

    /// Sets the timeout (replacing any other). Lazy, like nginx's timers: the libuv timer is restarted only
    /// when the new deadline is earlier than the one it is set for; a later deadline is checked when it fires.
    /// Exchanges re-arm their timeout several times each, so this saves most timer-heap operations.
    final func startTimer(_ ms: Int) {
        guard !isClosing else { return }
        let now = worker.now
        let deadline = now + UInt64(max(ms, 1))
        timerDeadline = deadline
        if timerScheduled == 0 || timerScheduled > deadline {
            uv_timer_start(timer, onTimerCallback, deadline - now, 0)
            timerScheduled = deadline
        }
    }

    /// Cancels the timeout (the libuv timer, if running, fires and is ignored).
    final func stopTimer() {
        timerDeadline = 0
    }

    /// The libuv timer fired: the timeout has expired, moved later (re-armed), or was cancelled.
    /// - Returns: whether the timeout really expired.
    final func timerExpired() -> Bool {
        timerScheduled = 0
        guard timerDeadline != 0, !isClosing else { return false }
        let now = worker.now
        if now < timerDeadline {
            uv_timer_start(timer, onTimerCallback, timerDeadline - now, 0)
            timerScheduled = timerDeadline
            return false
        }
        timerDeadline = 0
        return true
    }

    // MARK: closing

    /// Closes both handles (idempotent); writes still held are sent first (as if they had been written at
    /// once), writes queued in libuv are cancelled.
    final func close() {
        guard !isClosing else { return }
        isClosing = true
        isReading = false
        memoryPeer?.connectionDidClose()
        if deferredBytes > 0 { _ = worker.deferredWrites.sendNow(self) }
        if let t = tls, t.handshakeDone, !t.sentCloseNotify {
            // close_notify, best effort (RFC 8446 §6.1): the peer can tell the end from a truncation.
            t.shutdown()
            let out = t.outbound
            if out.count > 0 { _ = transmit(out, total: out.count) }
            t.outboundSent()
        }
        uv_close(etag_uv_handle(tcp), onCloseCallback)
        uv_close(etag_uv_handle(timer), onCloseCallback)
    }

    /// Closes with a TCP reset instead of a FIN (SO_LINGER 0): for an answer cut short, so that a client reading
    /// to the end of the connection (a close-delimited body) cannot take the cut for a complete answer.
    final func closeWithReset() {
        guard !isClosing else { return }
        if let peer = memoryPeer {
            peer.connectionDidReset()
            return close()
        }
        isClosing = true
        isReading = false
        // Bytes still held are not sent: the reset discards the socket's send buffer anyway.
        if deferredBytes > 0 { worker.deferredWrites.drop(self) }
        if uv_tcp_close_reset(tcp, onCloseCallback) != 0 { uv_close(etag_uv_handle(tcp), onCloseCallback) }
        uv_close(etag_uv_handle(timer), onCloseCallback)
    }

    /// Sends a TCP FIN after queued writes (half-close), then closes.
    final func shutdownThenClose() {
        guard !isClosing else { return }
        if let peer = memoryPeer {
            peer.connectionDidShutDown()
            return close()
        }
        if deferredBytes > 0 && worker.deferredWrites.sendNow(self) != 0 { return close() }
        if let t = tls {
            t.shutdown()
            if !flushTLS(t) { return close() }
        }
        let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        if uv_shutdown(req, stream, onShutdownCallback) != 0 {
            req.deallocate()
            close()
        } else {
            stopReading()
            startTimer(2000)  // a peer that never closes its side is closed after 2 s
            lingering = true
        }
    }

    /// After our FIN: reading only to discard what the peer still sends, until it closes.
    private(set) var lingering = false

    final func resumeLingerRead() {
        if uv_read_start(stream, onAllocCallback, onReadCallback) == 0 { isReading = true } else { close() }
    }

    final func handleClosed() {
        openHandles -= 1
        guard openHandles == 0 else { return }
        input.free()
        tls = nil
        didClose()
        tcp.deallocate()
        timer.deallocate()
        Unmanaged.passUnretained(self).release()
    }
}

extension UnsafeRawBufferPointer {
    static var empty: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }
}

/// A `uv_write_t`, the payload length, then the bytes it writes — one allocation.
struct WriteRequest {
    let request: UnsafeMutablePointer<uv_write_t>
    private var raw: UnsafeMutableRawPointer { UnsafeMutableRawPointer(request) }
    var payload: UnsafeMutableRawPointer { raw + Self.headerSize }
    var length: Int { raw.load(fromByteOffset: Self.lengthOffset, as: Int.self) }
    var pointee: uv_write_t {
        get { request.pointee }
        nonmutating set { request.pointee = newValue }
    }

    static let lengthOffset = (MemoryLayout<uv_write_t>.size + 7) & ~7
    static let headerSize = (lengthOffset + MemoryLayout<Int>.size + 15) & ~15

    static func make(_ payload: Int) -> WriteRequest {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: headerSize + payload, alignment: 16)
        raw.storeBytes(of: payload, toByteOffset: lengthOffset, as: Int.self)
        return WriteRequest(request: raw.bindMemory(to: uv_write_t.self, capacity: 1))
    }

    func free() { raw.deallocate() }
}

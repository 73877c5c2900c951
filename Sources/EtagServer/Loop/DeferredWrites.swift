internal import CEtagShim
#if canImport(Glibc)
import Glibc
#endif

/// Small client writes held until the end of the event-loop iteration, then sent in one burst.
///
/// While a worker works through one batch of ready sockets it used to answer each request the moment it was
/// parsed, so the answers went out spread across the batch and each one could wake the client's thread on its
/// own. Held here and sent together just before the loop polls again (a `uv_prepare` handle), they reach the
/// clients as one burst. Measured on the cached-304 path against the build that wrote at once
/// (`bench/run --baseline OLD --scenarios 304 --sizes 1k`, 20 interleaved rounds): +8% requests per second
/// (faster in 16 of 20 rounds) at 4% less CPU per request. Only when a write happens moves, by less than one
/// loop iteration.
///
/// The burst goes out with one io_uring call where the kernel allows it (`io_uring: true`, the default): one
/// system call for every connection's send instead of one `write` each. Besides the system calls this keeps the
/// burst whole: a `write` that wakes a client thread on this core is preempted on its way back to user space
/// (`perf` put 98% of the worker's context switches there), so the rest of the burst waited behind the client.
/// Measured (`bench/run --baseline`): +13–25% cached 304s per second at 15–22% less CPU per request than one
/// `write` each. Where io_uring is refused (seccomp, `kernel.io_uring_disabled`, old kernels) or fails, each
/// connection gets its own `write`.
///
/// Order per connection is kept: a write that is not held (too large, arena full) first sends what its
/// connection has held; `close` and `shutdown` do the same. Held bytes count in the connection's
/// `queuedBytes`, so back-pressure and close-after-write logic see them like bytes queued in libuv.
///
/// Hot path, so the bookkeeping lives in raw memory allocated once (no retain/release or exclusivity checks
/// per write). Entries do not retain their connection: an entry is emptied (`count` 0) when its connection
/// closes, and an empty entry's connection is never touched.
///
/// Worker thread only.
final class DeferredWrites {
    /// Writes larger than this go out at once (a body streamed through is not copied twice).
    static let maxHeldWrite = 16 * 1024
    static let arenaSize = 256 * 1024
    static let maxEntries = 2048

    private struct Entry {
        var connection: Unmanaged<TCPConnection>
        var start: Int
        var count: Int
    }

    private struct State {
        var used = 0
        var entries = 0
        var flushing = false
    }

    private let arena = UnsafeMutableRawPointer.allocate(byteCount: DeferredWrites.arenaSize, alignment: 16)
    private let entries = UnsafeMutablePointer<Entry>.allocate(capacity: DeferredWrites.maxEntries)
    private let drained = UnsafeMutablePointer<Unmanaged<TCPConnection>>.allocate(capacity: DeferredWrites.maxEntries)
    private let state = UnsafeMutablePointer<State>.allocate(capacity: 1)

    /// The io_uring used for a burst, with the per-send arrays it reads and fills; nil: one `write` each.
    private var ring: OpaquePointer?
    private let fds = UnsafeMutablePointer<Int32>.allocate(capacity: DeferredWrites.maxEntries)
    private let buffers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: DeferredWrites.maxEntries)
    private let lengths = UnsafeMutablePointer<Int>.allocate(capacity: DeferredWrites.maxEntries)
    private let results = UnsafeMutablePointer<Int32>.allocate(capacity: DeferredWrites.maxEntries)
    private let sendEntry = UnsafeMutablePointer<Int>.allocate(capacity: DeferredWrites.maxEntries)

    /// The ring is created by the worker's own thread, at its first flush: a ring shared across threads (set up
    /// by the starting thread, used by the worker) lost answers when many servers ran in one process (the test
    /// suite); created and used by one thread, as liburing intends, it did not.
    private var wantRing: Bool

    init(useIOUring: Bool) {
        state.initialize(to: State())
        wantRing = useIOUring
    }

    deinit {
        etag_uring_free(ring)
        arena.deallocate()
        entries.deallocate()
        drained.deallocate()
        state.deallocate()
        fds.deallocate()
        buffers.deallocate()
        lengths.deallocate()
        results.deallocate()
        sendEntry.deallocate()
    }

    /// Copies the parts into the arena for `c`; false when they should be written at once instead.
    func hold(
        _ c: TCPConnection,
        _ parts: (
            UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer,
            UnsafeRawBufferPointer
        ), total: Int
    ) -> Bool {
        let s = state
        guard !s.pointee.flushing, total <= Self.maxHeldWrite, s.pointee.used + total <= Self.arenaSize
        else { return false }
        let start = s.pointee.used
        var at = arena + start
        func copy(_ part: UnsafeRawBufferPointer) {
            guard part.count > 0 else { return }
            at.copyMemory(from: part.baseAddress!, byteCount: part.count)
            at += part.count
        }
        copy(parts.0)
        copy(parts.1)
        copy(parts.2)
        copy(parts.3)
        let me = Unmanaged.passUnretained(c)
        let n = s.pointee.entries
        // Pipelined answers on one connection usually follow each other: one entry for all of them.
        if n > 0, entries[n - 1].count > 0, entries[n - 1].connection.toOpaque() == me.toOpaque(),
            entries[n - 1].start + entries[n - 1].count == start
        {
            entries[n - 1].count += total
        } else {
            guard n < Self.maxEntries else { return false }
            (entries + n).initialize(to: Entry(connection: me, start: start, count: total))
            s.pointee.entries = n + 1
        }
        s.pointee.used = start + total
        c.deferredBytes += total
        c.queuedBytes += total
        return true
    }

    /// Sends what `c` holds now, in order (before a write that is not held, a shutdown or a close).
    /// - Returns: 0, or the first libuv error.
    func sendNow(_ c: TCPConnection) -> Int32 {
        let me = Unmanaged.passUnretained(c).toOpaque()
        var result: Int32 = 0
        for i in 0..<state.pointee.entries where entries[i].count > 0 && entries[i].connection.toOpaque() == me {
            let (start, count) = (entries[i].start, entries[i].count)
            entries[i].count = 0
            c.deferredBytes -= count
            c.queuedBytes -= count
            if result == 0 { result = c.transmit(slice(start, count), total: count) }
        }
        return result
    }

    /// Forgets what `c` holds without sending it (a connection closed with a reset): no entry may outlive the
    /// connection, which goes away in this loop iteration's closing phase, before the next flush.
    func drop(_ c: TCPConnection) {
        let me = Unmanaged.passUnretained(c).toOpaque()
        for i in 0..<state.pointee.entries where entries[i].count > 0 && entries[i].connection.toOpaque() == me {
            c.deferredBytes -= entries[i].count
            c.queuedBytes -= entries[i].count
            entries[i].count = 0
        }
    }

    /// Sends everything held (the loop is about to poll), then tells each connection whose writes all went
    /// out that it has drained.
    func flush() {
        let s = state
        let n = s.pointee.entries
        guard n > 0 else { return }
        s.pointee.flushing = true
        var drainedCount = 0
        if wantRing { createRing() }
        if ring != nil { sendThroughRing(n, &drainedCount) }
        // Without a ring, and what the ring did not take: one write each, in order.
        for i in 0..<n where entries[i].count > 0 {
            settle(i, sent: 0, &drainedCount)
        }
        s.pointee.entries = 0
        s.pointee.used = 0
        // Draining may start the next exchange on a connection; its writes go out at once from here. A
        // connection that closes meanwhile stays allocated until the loop's closing phase, after this.
        for i in 0..<drainedCount {
            drained[i]._withUnsafeGuaranteedRef { c in
                if !c.isClosing && c.queuedBytes == 0 { c.didDrain() }
            }
        }
        s.pointee.flushing = false
    }

    /// Sends, with one io_uring call, every held entry that is its connection's only output (nothing queued in
    /// libuv, no other entry): order per connection cannot change. What a socket does not take now is queued the
    /// ordinary way.
    private func sendThroughRing(_ n: Int, _ drainedCount: inout Int) {
        var m = 0
        for i in 0..<n where entries[i].count > 0 {
            let count = entries[i].count
            let fd = entries[i].connection._withUnsafeGuaranteedRef { c -> Int32 in
                c.isClosing || c.deferredBytes != count || c.queuedBytes != count ? -1 : c.socketFD
            }
            guard fd >= 0 else { continue }
            fds[m] = fd
            buffers[m] = arena + entries[i].start
            lengths[m] = count
            sendEntry[m] = i
            m += 1
        }
        guard m > 0, let r = ring else { return }
        if etag_uring_send_all(r, fds, buffers, lengths, Int32(m), results) != 0 {
            // The ring failed: never entered again (see the shim); from now on one write each.
            ring = nil
        }
        for k in 0..<m {
            let result = Int(results[k])
            // Partly or not taken (a full socket): the rest goes the ordinary way. A send error (reset, broken
            // pipe) or, after a ring failure, an unknown outcome (-EIO) fails the connection; libuv's error
            // codes are the negated errno values.
            let failure: Int32 = result >= 0 || result == -Int(EAGAIN) ? 0 : Int32(result)
            settle(sendEntry[k], sent: max(result, 0), failure: failure, &drainedCount)
        }
    }

    /// Releases entry `i` (of which `sent` bytes went out already): the rest is written the ordinary way, or the
    /// connection fails with `failure`; a connection left with nothing to write joins `drained`.
    private func settle(_ i: Int, sent: Int, failure: Int32 = 0, _ drainedCount: inout Int) {
        let (start, count) = (entries[i].start, entries[i].count)
        entries[i].count = 0
        let done = entries[i].connection._withUnsafeGuaranteedRef { c -> Bool in
            c.deferredBytes -= count
            c.queuedBytes -= count
            if c.isClosing { return false }
            var rc = failure
            if rc == 0 && sent < count { rc = c.transmit(slice(start + sent, count - sent), total: count - sent) }
            if rc != 0 { c.didFail(rc) }
            return rc == 0 && c.queuedBytes == 0
        }
        if done {
            drained[drainedCount] = entries[i].connection
            drainedCount += 1
        }
    }

    private func createRing() {
        wantRing = false
        var error: Int32 = 0
        ring = etag_uring_new(256, &error)
        if ring == nil {
            let line = "etag-proxy: io_uring unavailable (\(String(cString: strerror(error)))): one write per answer\n"
            _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        }
    }

    private func slice(_ start: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: arena + start, count: count)
    }
}

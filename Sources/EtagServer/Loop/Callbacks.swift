internal import CLibUV

// libuv callbacks: global functions (a closure literal in top-level code would be @MainActor and trap when
// called on a worker thread). Each recovers its object from the handle's `data`.

@inline(__always)
private func connection(_ h: UnsafeMutableRawPointer?) -> TCPConnection {
    Unmanaged<TCPConnection>.fromOpaque(h!).takeUnretainedValue()
}

func onAllocCallback(
    _ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int,
    _ buf: UnsafeMutablePointer<uv_buf_t>?
) {
    let c = connection(handle!.pointee.data)
    let space = c.allocate()
    buf!.pointee = uv_buf_t(base: space.baseAddress!.assumingMemoryBound(to: CChar.self), len: space.count)
}

func onReadCallback(
    _ stream: UnsafeMutablePointer<uv_stream_t>?, _ nread: Int,
    _ buf: UnsafePointer<uv_buf_t>?
) {
    let c = connection(stream!.pointee.data)
    if c.lingering {
        if nread < 0 { c.close() }
        return
    }
    if nread > 0 {
        c.didRead(UnsafeMutableRawPointer(buf!.pointee.base!), nread)
    } else if nread == Int(UV_EOF.rawValue) {
        c.stopReading()
        c.didReachEOF()
    } else if nread < 0 {
        c.stopReading()
        c.didFail(Int32(nread))
    }
}

func onWriteCallback(_ req: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
    let c = connection(req!.pointee.data)
    let w = WriteRequest(request: req!)
    let len = w.length
    w.free()
    c.writeCompleted(len, status)
}

func onTimerCallback(_ t: UnsafeMutablePointer<uv_timer_t>?) {
    let c = connection(t!.pointee.data)
    guard c.timerExpired() else { return }
    if c.lingering { c.close() } else { c.timerFired() }
}

func onCloseCallback(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    connection(h!.pointee.data).handleClosed()
}

func onShutdownCallback(_ req: UnsafeMutablePointer<uv_shutdown_t>?, _ status: Int32) {
    let c = connection(req!.pointee.data)
    req!.deallocate()
    // Keep reading until the peer closes (so unread data does not turn our FIN into a reset) — bounded by
    // the timer started in shutdownThenClose.
    if !c.isClosing { c.resumeLingerRead() }
}

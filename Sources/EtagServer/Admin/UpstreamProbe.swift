internal import CLibUV
internal import CEtagShim

/// One TCP connect to the upstream, for `/readyz` when no worker has reached it recently: reports 0 or the libuv
/// error (`UV_ETIMEDOUT` past the timeout) once, then closes its socket.
///
/// Ownership: retained by its handles from `start` until both are closed. Admin thread only.
final class UpstreamProbe {
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private let timeoutMs: Int
    private var done: ((Int32) -> Void)?
    private var openHandles = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>, timeoutMs: Int, done: @escaping (Int32) -> Void) {
        self.loop = loop
        self.timeoutMs = timeoutMs
        self.done = done
        tcp = .allocate(capacity: 1)
        timer = .allocate(capacity: 1)
    }

    func start(_ address: sockaddr_storage) {
        var address = address
        let me = Unmanaged.passRetained(self).toOpaque()
        uv_tcp_init(loop, tcp)
        uv_timer_init(loop, timer)
        openHandles = 2
        tcp.pointee.data = me
        timer.pointee.data = me
        let req = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        req.pointee.data = me
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_connect(req, tcp, $0, onProbeConnect) }
        }
        if rc != 0 {
            req.deallocate()
            return finish(rc)
        }
        uv_timer_start(timer, onProbeTimeout, UInt64(max(timeoutMs, 1)), 0)
    }

    /// Reports a failure found before connecting (the name did not resolve).
    func report(_ code: Int32) {
        guard let d = done else { return }
        done = nil
        d(code)
    }

    fileprivate func finish(_ code: Int32) {
        guard let d = done else { return }
        done = nil
        for h in [etag_uv_handle(tcp), etag_uv_handle(timer)] where uv_is_closing(h) == 0 {
            uv_close(h, onProbeClose)
        }
        d(code)
    }

    /// Ends the probe without reporting (the admin server is closing).
    func cancel() {
        done = nil
        guard openHandles > 0 else { return }  // still waiting for the name: no handle yet
        for h in [etag_uv_handle(tcp), etag_uv_handle(timer)] where uv_is_closing(h) == 0 {
            uv_close(h, onProbeClose)
        }
    }

    fileprivate func handleClosed() {
        openHandles -= 1
        guard openHandles == 0 else { return }
        tcp.deallocate()
        timer.deallocate()
        Unmanaged.passUnretained(self).release()
    }
}

private func onProbeConnect(_ req: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
    let p = Unmanaged<UpstreamProbe>.fromOpaque(req!.pointee.data).takeUnretainedValue()
    req!.deallocate()
    // UV_ECANCELED: the handle was closed (timeout or cancel) before the connect finished.
    if status != UV_ECANCELED.rawValue { p.finish(status) }
}

private func onProbeTimeout(_ t: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<UpstreamProbe>.fromOpaque(t!.pointee.data).takeUnretainedValue().finish(UV_ETIMEDOUT.rawValue)
}

private func onProbeClose(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    Unmanaged<UpstreamProbe>.fromOpaque(h!.pointee.data).takeUnretainedValue().handleClosed()
}

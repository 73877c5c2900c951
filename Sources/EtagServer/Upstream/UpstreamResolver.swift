internal import CLibUV
internal import CEtagShim
#if canImport(Glibc)
import Glibc
#endif

/// The upstream's address, looked up when connecting (`uv_getaddrinfo`, on libuv's thread pool: the loop never
/// blocks) and kept for `upstream_resolve_ttl`, so a name that does not resolve at start-up (an API container that
/// starts later) is a 502 with the reason until it does, not an exit. An IP literal is parsed once. A lookup that
/// fails after an earlier success keeps the last address (as nginx's resolver does); a failure is remembered for
/// a second so a burst of requests does not become a burst of lookups.
///
/// Ownership: one per loop (a worker's, or the admin's). Its lookup request retains it until its callback; the
/// callers it answers are retained in `waiting` until then. Loop thread only.
final class UpstreamResolver {
    enum Answer {
        case address(sockaddr_storage)
        /// The lookup failed: a libuv `UV_EAI_*` code.
        case failed(Int32)
    }

    let host: String
    let port: Int
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let ttlMs: UInt64
    private var address: sockaddr_storage?
    private var expiresMs: UInt64 = 0
    private let literal: Bool
    private var lastFailure: (code: Int32, untilMs: UInt64)?
    private var waiting: [(Answer) -> Void] = []
    private var lookingUp = false

    init(loop: UnsafeMutablePointer<uv_loop_t>, host: String, port: Int, ttlMs: Int) {
        self.loop = loop
        self.host = host
        self.port = port
        self.ttlMs = UInt64(max(ttlMs, 0))
        var a = sockaddr_storage()
        literal = etag_parse_ip(host, Int32(port), &a) == 0
        if literal { address = a }
    }

    enum Lookup {
        /// Known now.
        case now(sockaddr_storage)
        /// Failed a moment ago: not looked up again yet.
        case failedRecently(Int32)
        /// Being looked up: the callback hears on a later loop turn.
        case later
    }

    func resolve(_ done: @escaping (Answer) -> Void) -> Lookup {
        let now = uv_now(loop)
        if let a = address, literal || now < expiresMs { return .now(a) }
        if address == nil, let f = lastFailure, now < f.untilMs { return .failedRecently(f.code) }
        if !lookingUp, let code = startLookup() { return .failedRecently(code) }
        waiting.append(done)
        return .later
    }

    /// Starts a lookup (nobody is waiting yet); the error when it cannot start.
    private func startLookup() -> Int32? {
        lookingUp = true
        let req = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
        req.pointee.data = Unmanaged.passRetained(self).toOpaque()
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let rc = uv_getaddrinfo(loop, req, onResolved, host, nil, &hints)
        if rc != 0 {
            Unmanaged<UpstreamResolver>.fromOpaque(req.pointee.data).release()
            req.deallocate()
            lookingUp = false
            lastFailure = (rc, uv_now(loop) + 1000)
            return rc
        }
        return nil
    }

    fileprivate func resolved(_ status: Int32, _ info: UnsafeMutablePointer<addrinfo>?) {
        lookingUp = false
        var a = sockaddr_storage()
        let now = uv_now(loop)
        if status == 0, etag_addrinfo_first(info, Int32(port), &a) == 0 {
            address = a
            expiresMs = now + ttlMs
            lastFailure = nil
            finish(.address(a))
        } else if let old = address {
            expiresMs = now + min(ttlMs, 1000)  // keep the last address; look again soon
            finish(.address(old))
        } else {
            let code = status != 0 ? status : UV_EAI_NONAME.rawValue
            lastFailure = (code, now + 1000)
            finish(.failed(code))
        }
    }

    private func finish(_ answer: Answer) {
        let callers = waiting
        waiting = []
        for c in callers { c(answer) }
    }
}

private func onResolved(
    _ req: UnsafeMutablePointer<uv_getaddrinfo_t>?, _ status: Int32, _ info: UnsafeMutablePointer<addrinfo>?
) {
    let r = Unmanaged<UpstreamResolver>.fromOpaque(req!.pointee.data).takeRetainedValue()
    req!.deallocate()
    r.resolved(status, info)
    uv_freeaddrinfo(info)
}

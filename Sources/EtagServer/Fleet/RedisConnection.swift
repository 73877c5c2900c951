internal import CEtagRedis
internal import CLibUV
import EtagCore
#if canImport(Glibc)
import Glibc
#endif

/// A Redis reply, copied out of hiredis's (freed when its callback returns).
enum RedisReply: Equatable {
    case status([UInt8])
    case error([UInt8])
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisReply])

    init(_ r: UnsafeMutablePointer<redisReply>) {
        let p = r.pointee
        func bytes() -> [UInt8] {
            guard let s = p.str, p.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: s, count: p.len))
        }
        switch p.type {
        case REDIS_REPLY_STATUS: self = .status(bytes())
        case REDIS_REPLY_ERROR: self = .error(bytes())
        case REDIS_REPLY_INTEGER: self = .integer(p.integer)
        case REDIS_REPLY_STRING: self = .bulk(bytes())
        case REDIS_REPLY_ARRAY: self = .array((0..<p.elements).map { RedisReply(etag_redis_element(r, $0)!) })
        default: self = .null
        }
    }
}

/// Hears when a connection becomes usable (connected, authenticated, database selected) and when it is lost.
protocol RedisConnectionDelegate: AnyObject {
    func redisUp(_ c: RedisConnection)
    func redisDown(_ c: RedisConnection, reason: String)
}

/// One connection to the fleet's Redis through hiredis's asynchronous API on a worker's libuv loop: never a
/// blocking call (the host is looked up on libuv's thread pool, hiredis connects without blocking, every reply
/// arrives in a loop callback). A connection that fails, or whose connect or oldest reply takes longer than
/// `timeouts.redis`, is dropped (every waiting command hears nil) and made again with backoff
/// (`FleetPolicy.reconnectDelay`), until `close`.
///
/// Ownership: one per user (a worker's `FleetLink`, or the process's subscriber), created and used on its loop's
/// thread only. It owns the hiredis context (freed by hiredis after a disconnect, or here by `redisAsyncFree`)
/// and two libuv timers, closed by `close()` and freed in `deinit` once the loop has closed them. The context's
/// `data` is this object, unretained: `close()` frees the context before the owner lets go of this object.
final class RedisConnection {
    let endpoint: RedisEndpoint
    private let password: String?
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let timeoutMs: UInt64
    weak var delegate: (any RedisConnectionDelegate)?
    private let resolver: UpstreamResolver
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    /// Commands sent and not answered yet, oldest first (Redis answers in order), with their deadlines.
    private var pending: [(deadline: UInt64, done: (RedisReply?) -> Void)] = []
    private var pendingHead = 0
    /// Connected and ready for commands.
    private(set) var isUp = false
    private var connectDeadline: UInt64 = 0
    private var attempt = 0
    private var closed = false
    /// The subscription, for a subscriber connection: its channel and what it does with each message.
    private var subscription: (channel: [UInt8], onMessage: ([UInt8]) -> Void)?
    /// When the last SUBSCRIBE (a heartbeat repeats it) must be confirmed by; 0: none outstanding.
    private var subscribeDeadline: UInt64 = 0
    private var lastSubscribe: UInt64 = 0
    private let deadlineTimer: UnsafeMutablePointer<uv_timer_t> = .allocate(capacity: 1)
    private let retryTimer: UnsafeMutablePointer<uv_timer_t> = .allocate(capacity: 1)

    init(
        loop: UnsafeMutablePointer<uv_loop_t>, endpoint: RedisEndpoint, password: String?, timeoutMs: Int
    ) {
        self.loop = loop
        self.endpoint = endpoint
        self.password = password ?? endpoint.password
        self.timeoutMs = UInt64(max(timeoutMs, 1))
        resolver = UpstreamResolver(loop: loop, host: endpoint.host, port: endpoint.port, ttlMs: 30_000)
        let me = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_init(loop, deadlineTimer)
        deadlineTimer.pointee.data = me
        uv_timer_init(loop, retryTimer)
        retryTimer.pointee.data = me
        // Neither keeps the loop alive: the worker's own handles decide when it ends.
        uv_unref(etag_uv_handle(deadlineTimer))
        uv_unref(etag_uv_handle(retryTimer))
    }

    deinit {
        deadlineTimer.deallocate()
        retryTimer.deallocate()
    }

    private var now: UInt64 { uv_now(loop) }

    /// Starts connecting (and keeps the connection up until `close`).
    func start() { connect() }

    /// Makes this a subscriber: once connected it subscribes to `channel` (again after every reconnect, and
    /// every second as a heartbeat whose confirmation proves the connection alive). `redisUp` means subscribed.
    func subscribe(_ channel: [UInt8], onMessage: @escaping ([UInt8]) -> Void) {
        subscription = (channel, onMessage)
    }

    /// Sends a command; `done` hears its reply, or nil when the connection was lost or timed out first (never
    /// inside this call). Returns false, and `done` is never called, when the connection is not up.
    @discardableResult
    func command(_ args: [[UInt8]], _ done: @escaping (RedisReply?) -> Void) -> Bool {
        guard isUp, let ctx = context, send(ctx, args) else { return false }
        pending.append((now + timeoutMs, done))
        armDeadline()
        return true
    }

    /// Drops the connection for good (waiting commands hear nil) and closes the timers.
    func close() {
        guard !closed else { return }
        closed = true
        drop(reason: "closed", reconnect: false)
        uv_close(etag_uv_handle(deadlineTimer), nil)
        uv_close(etag_uv_handle(retryTimer), nil)
    }

    // MARK: connecting

    private func connect() {
        guard !closed, context == nil else { return }
        connectDeadline = now + timeoutMs
        armDeadline()
        switch resolver.resolve({ [weak self] answer in self?.resolved(answer) }) {
        case .now(let address): open(address)
        case .failedRecently(let code): failedToConnect("cannot resolve \(endpoint.host): \(UVError.name(code))")
        case .later: break
        }
    }

    private func resolved(_ answer: UpstreamResolver.Answer) {
        guard !closed, context == nil, connectDeadline != 0 else { return }
        switch answer {
        case .address(let a): open(a)
        case .failed(let code): failedToConnect("cannot resolve \(endpoint.host): \(UVError.name(code))")
        }
    }

    private func open(_ address: sockaddr_storage) {
        var a = address
        var ip = [CChar](repeating: 0, count: 64)
        _ = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_ip_name($0, &ip, ip.count) }
        }
        var err = [CChar](repeating: 0, count: 128)
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard
            let ctx = etag_redis_connect(
                loop, ip, Int32(endpoint.port), me, onRedisConnect, onRedisDisconnect, &err, err.count)
        else {
            return failedToConnect(
                String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        context = ctx
        // AUTH and SELECT go first; commands are accepted once both are answered (`isUp`).
        var setup: [[[UInt8]]] = []
        if let p = password {
            setup.append(
                endpoint.user.map { [Array("AUTH".utf8), Array($0.utf8), Array(p.utf8)] }
                    ?? [Array("AUTH".utf8), Array(p.utf8)])
        }
        if endpoint.db != 0 { setup.append([Array("SELECT".utf8), Array(String(endpoint.db).utf8)]) }
        var remaining = setup.count
        for cmd in setup {
            guard send(ctx, cmd) else { return drop(reason: "cannot send \(cmd[0])", reconnect: true) }
            let name = String(decoding: cmd[0], as: UTF8.self)
            pending.append(
                (
                    now + timeoutMs,
                    { [weak self] reply in
                        guard let self, self.context == ctx else { return }
                        if case .error(let e) = reply {
                            return self.drop(reason: "\(name): \(String(decoding: e, as: UTF8.self))", reconnect: true)
                        }
                        remaining -= 1
                        if remaining == 0 { self.ready() }
                    }
                ))
        }
        armDeadline()
    }

    private var setupPending: Bool { pending.count > pendingHead }

    /// hiredis's connect callback: the TCP connect finished (the context is freed after a failure).
    fileprivate func connected(_ ac: UnsafeMutablePointer<redisAsyncContext>, ok: Bool) {
        guard ac == context else { return }
        if !ok {
            let reason = String(cString: etag_redis_error(ac))
            context = nil  // hiredis frees it when this callback returns
            return failedToConnect(reason.isEmpty ? "connection refused" : reason)
        }
        if !setupPending { ready() }
    }

    private func ready() {
        guard let ctx = context else { return }
        if let sub = subscription {
            guard sendSubscribe(ctx, sub.channel) else { return drop(reason: "cannot subscribe", reconnect: true) }
            return  // up once the first confirmation arrives
        }
        becomeUp()
    }

    private func becomeUp() {
        connectDeadline = 0
        attempt = 0
        isUp = true
        armDeadline()
        delegate?.redisUp(self)
    }

    private func sendSubscribe(_ ctx: UnsafeMutablePointer<redisAsyncContext>, _ channel: [UInt8]) -> Bool {
        guard send(ctx, [Array("SUBSCRIBE".utf8), channel], subscription: true) else { return false }
        lastSubscribe = now
        if subscribeDeadline == 0 { subscribeDeadline = now + timeoutMs }
        armDeadline()
        return true
    }

    private func failedToConnect(_ reason: String) { drop(reason: reason, reconnect: true) }

    /// hiredis's disconnect callback: the connection is gone (hiredis frees the context when this returns).
    fileprivate func disconnected(_ ac: UnsafeMutablePointer<redisAsyncContext>) {
        guard ac == context else { return }
        let reason = String(cString: etag_redis_error(ac))
        context = nil
        drop(reason: reason.isEmpty ? "the connection closed" : reason, reconnect: true)
    }

    /// Forgets the connection (freeing the context unless hiredis is about to), fails every waiting command,
    /// tells the delegate, and schedules the next attempt.
    private func drop(reason: String, reconnect: Bool) {
        let wasUp = isUp
        isUp = false
        connectDeadline = 0
        subscribeDeadline = 0
        if let ctx = context {
            context = nil
            redisAsyncFree(ctx)  // its callbacks no longer match `context`: ignored
        }
        let waiting = pending[pendingHead...].map(\.done)
        pending = []
        pendingHead = 0
        for done in waiting { done(nil) }
        if reconnect && !closed {
            uv_timer_start(retryTimer, onRetryTimer, UInt64(FleetPolicy.reconnectDelay(attempt: attempt)), 0)
            attempt += 1
        }
        if wasUp || attempt == 1 { delegate?.redisDown(self, reason: reason) }
    }

    fileprivate func retry() { connect() }

    // MARK: replies

    private func send(
        _ ctx: UnsafeMutablePointer<redisAsyncContext>, _ args: [[UInt8]], subscription: Bool = false
    ) -> Bool {
        // One buffer for every argument; hiredis copies them into its output buffer before returning.
        let total = args.reduce(0) { $0 + $1.count }
        let block = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 1)
        defer { block.deallocate() }
        var pointers: [UnsafePointer<CChar>?] = []
        pointers.reserveCapacity(args.count)
        var offset = 0
        for a in args {
            a.withUnsafeBytes {
                if let src = $0.baseAddress { (block + offset).copyMemory(from: src, byteCount: a.count) }
            }
            pointers.append(UnsafePointer((block + offset).assumingMemoryBound(to: CChar.self)))
            offset += a.count
        }
        var lengths = args.map(\.count)
        let rc =
            subscription
            ? etag_redis_command(ctx, onRedisMessage, nil, Int32(args.count), &pointers, &lengths)
            : etag_redis_command(ctx, onRedisReply, nil, Int32(args.count), &pointers, &lengths)
        return rc == REDIS_OK
    }

    fileprivate func replied(_ ac: UnsafeMutablePointer<redisAsyncContext>, _ r: UnsafeMutableRawPointer?) {
        guard ac == context, pendingHead < pending.count else { return }
        let done = pending[pendingHead].done
        pendingHead += 1
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        }
        guard let r else {
            isUp = false  // hiredis is failing the connection: its disconnect callback follows
            return done(nil)
        }
        armDeadline()
        done(RedisReply(r.assumingMemoryBound(to: redisReply.self)))
    }

    fileprivate func message(_ ac: UnsafeMutablePointer<redisAsyncContext>, _ r: UnsafeMutableRawPointer?) {
        guard ac == context, let r, let sub = subscription else { return }
        guard case .array(let parts) = RedisReply(r.assumingMemoryBound(to: redisReply.self)), parts.count >= 3,
            case .bulk(let kind) = parts[0]
        else { return }
        if kind == Array("subscribe".utf8) {
            subscribeDeadline = 0
            if !isUp { becomeUp() }
            armDeadline()
        } else if kind == Array("message".utf8), case .bulk(let payload) = parts[2] {
            sub.onMessage(payload)
        }
    }

    // MARK: deadlines

    /// The earliest of: the connect deadline, the oldest reply's, the subscription's (and its next heartbeat).
    private func armDeadline() {
        guard !closed else { return }
        var next: UInt64 = .max
        if connectDeadline != 0 { next = connectDeadline }
        if pendingHead < pending.count { next = min(next, pending[pendingHead].deadline) }
        if subscribeDeadline != 0 { next = min(next, subscribeDeadline) }
        if isUp, subscription != nil { next = min(next, lastSubscribe + 1_000) }
        guard next != .max else {
            uv_timer_stop(deadlineTimer)
            return
        }
        let t = now
        uv_timer_start(deadlineTimer, onDeadlineTimer, next > t ? next - t : 0, 0)
    }

    fileprivate func deadlineReached() {
        let t = now
        if connectDeadline != 0, t >= connectDeadline {
            return drop(reason: "no connection within timeouts.redis", reconnect: true)
        }
        if pendingHead < pending.count, t >= pending[pendingHead].deadline {
            return drop(reason: "no reply within timeouts.redis", reconnect: true)
        }
        if subscribeDeadline != 0, t >= subscribeDeadline {
            return drop(reason: "the subscription was not confirmed within timeouts.redis", reconnect: true)
        }
        if isUp, let sub = subscription, let ctx = context, t >= lastSubscribe + 1_000 {
            guard sendSubscribe(ctx, sub.channel) else { return drop(reason: "cannot subscribe", reconnect: true) }
        }
        armDeadline()
    }
}

private func connection(_ ac: UnsafePointer<redisAsyncContext>?) -> RedisConnection? {
    guard let ac, let owner = etag_redis_owner(ac) else { return nil }
    return Unmanaged<RedisConnection>.fromOpaque(owner).takeUnretainedValue()
}

private func onRedisConnect(_ ac: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
    connection(ac)?.connected(UnsafeMutablePointer(mutating: ac!), ok: status == REDIS_OK)
}

private func onRedisDisconnect(_ ac: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
    connection(ac)?.disconnected(UnsafeMutablePointer(mutating: ac!))
}

private func onRedisReply(
    _ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
    _ privdata: UnsafeMutableRawPointer?
) {
    connection(ac)?.replied(ac!, reply)
}

private func onRedisMessage(
    _ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
    _ privdata: UnsafeMutableRawPointer?
) {
    connection(ac)?.message(ac!, reply)
}

private func onDeadlineTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<RedisConnection>.fromOpaque(h!.pointee.data).takeUnretainedValue().deadlineReached()
}

private func onRetryTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<RedisConnection>.fromOpaque(h!.pointee.data).takeUnretainedValue().retry()
}

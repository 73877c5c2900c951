internal import CLibUV
internal import CEtagShim
import EtagCore

/// Write leases for a fleet of replicas: this host's shared-memory lease first (so one writer per resource and
/// host asks Redis, and one Redis request is made per waiting resource, not per waiter), then the fleet's lease
/// in Redis — `SET <name>:lease:<resource> <token> NX PX <lease_ttl>`, renewed and freed only by its owner
/// (`FleetProtocol.renewScript` / `releaseScript`). Held by another replica: asked again with backoff (1 to
/// 50 ms) until `concurrency.lease_wait`. Redis unreachable: `FleetPolicy.leaseUnreachable` decides (503, or
/// this host's lease alone).
///
/// Ownership: one per worker, on its thread only. Owns its requests (one per writer waiting or holding), the
/// local `SharedMemoryLeases` and two libuv timers (asking again; renewing, every third of `lease_ttl`), closed
/// by `close()` and freed in `deinit` once the loop has closed them. Writers are referenced
/// `unowned(unsafe)`: a writer calls `stopWaiting` or `release` before it goes away.
final class FleetLeases: WriteLeases {
    /// One writer's way to its lease; the local leases' waiter for it.
    fileprivate final class Request: LeaseWaiter {
        enum Stage {
            /// Waiting for this host's lease.
            case local
            /// Holding the host's lease; the fleet's is asked for at `at` (loop ms).
            case due(at: UInt64)
            /// A SET is at Redis.
            case asking
            /// Held: in Redis too, or (`local`) on this host only.
            case held(fleet: Bool)
            /// The writer left while its SET was at Redis: freed when the reply comes.
            case cancelled
        }
        unowned(unsafe) let writer: any LeaseWaiter
        unowned(unsafe) let owner: FleetLeases
        let resource: Digest20
        let key: [UInt8]
        let token: [UInt8]
        let since: UInt64
        var stage = Stage.local
        var backoff: UInt64 = 1

        init(
            writer: any LeaseWaiter, owner: FleetLeases, resource: Digest20, key: [UInt8], token: [UInt8], since: UInt64
        ) {
            self.writer = writer
            self.owner = owner
            self.resource = resource
            self.key = key
            self.token = token
            self.since = since
        }

        func leaseGranted() { owner.hostLeaseGranted(self) }
        func leaseWaitExpired() { owner.finish(self) { $0.writer.leaseWaitExpired() } }
        func leaseStoreUnreachable() {}  // the host's leases never say it
    }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let local: SharedMemoryLeases
    private let link: FleetLink
    private var ttl: Int
    private var maxWait: UInt64
    /// Every writer waiting or holding, by writer.
    private var requests: [ObjectIdentifier: Request] = [:]
    /// The held ones, by resource (the host's lease admits one writer per resource at a time).
    private var held: [Digest20: Request] = [:]
    private let askTimer: UnsafeMutablePointer<uv_timer_t> = .allocate(capacity: 1)
    private let renewTimer: UnsafeMutablePointer<uv_timer_t> = .allocate(capacity: 1)
    private var askScheduled: UInt64 = 0
    private var closed = false

    init(loop: UnsafeMutablePointer<uv_loop_t>, local: SharedMemoryLeases, link: FleetLink, ttl: Int, maxWait: Int) {
        self.loop = loop
        self.local = local
        self.link = link
        self.ttl = max(ttl, 1)
        self.maxWait = UInt64(max(maxWait, 0))
        let me = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_init(loop, askTimer)
        askTimer.pointee.data = me
        uv_timer_init(loop, renewTimer)
        renewTimer.pointee.data = me
        let renew = UInt64(max(ttl / 3, 1))
        uv_timer_start(renewTimer, onFleetRenewTimer, renew, renew)
        uv_unref(etag_uv_handle(renewTimer))
    }

    deinit {
        askTimer.deallocate()
        renewTimer.deallocate()
    }

    private var now: UInt64 { uv_now(loop) }

    func configure(ttl: Int, maxWait: Int) {
        self.ttl = max(ttl, 1)
        self.maxWait = UInt64(max(maxWait, 0))
        local.configure(ttl: ttl, maxWait: maxWait)
    }

    func acquire(_ resource: Digest20, for waiter: any LeaseWaiter) -> Bool {
        let r = Request(
            writer: waiter, owner: self, resource: resource, key: FleetProtocol.leaseKey(link.name, resource),
            token: link.state.nextToken(), since: now)
        requests[ObjectIdentifier(waiter)] = r
        if local.acquire(resource, for: r) {
            // Redis is asked on the next loop turn: the writer never hears inside this call.
            r.stage = .due(at: now)
            scheduleAsk(now)
        }
        return false
    }

    func release(_ resource: Digest20, letExpire: Bool) {
        guard let r = held.removeValue(forKey: resource) else { return local.release(resource, letExpire: letExpire) }
        requests.removeValue(forKey: ObjectIdentifier(r.writer))
        if case .held(fleet: true) = r.stage, !letExpire { freeInRedis(r) }
        local.release(resource, letExpire: letExpire)
    }

    func stopWaiting(_ waiter: any LeaseWaiter, for resource: Digest20) {
        guard let r = requests[ObjectIdentifier(waiter)] else { return }
        switch r.stage {
        case .local:
            requests.removeValue(forKey: ObjectIdentifier(waiter))
            local.stopWaiting(r, for: resource)
        case .due:
            requests.removeValue(forKey: ObjectIdentifier(waiter))
            local.release(resource, letExpire: false)
        case .asking:
            requests.removeValue(forKey: ObjectIdentifier(waiter))
            r.stage = .cancelled  // the reply frees what it took
        case .held, .cancelled:
            break
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        requests = [:]
        held = [:]
        local.close()
        uv_close(etag_uv_handle(askTimer), nil)
        uv_close(etag_uv_handle(renewTimer), nil)
    }

    // MARK: asking Redis

    fileprivate func hostLeaseGranted(_ r: Request) {
        guard case .local = r.stage else { return }
        ask(r)
    }

    private func ask(_ r: Request) {
        r.stage = .asking
        let sent = link.command(
            [Array("SET".utf8), r.key, r.token, Array("NX".utf8), Array("PX".utf8), Array(String(ttl).utf8)]
        ) { [unowned(unsafe) self] reply in self.answered(r, reply) }
        if !sent { unreachable(r) }
    }

    private func answered(_ r: Request, _ reply: RedisReply?) {
        guard !closed else { return }
        if case .cancelled = r.stage {
            if case .status = reply { freeInRedis(r) }
            return local.release(r.resource, letExpire: false)
        }
        switch reply {
        case .status:
            link.count(.acquired)
            r.stage = .held(fleet: true)
            held[r.resource] = r
            r.writer.leaseGranted()
        case .null:
            link.count(.busy)  // another replica's writer holds it
            if now - r.since > maxWait {
                finish(r) { $0.writer.leaseWaitExpired() }
                return local.release(r.resource, letExpire: false)
            }
            r.stage = .due(at: now + r.backoff)
            r.backoff = min(r.backoff * 2, 50)
            scheduleAsk(now + r.backoff)
        case nil, .error, .integer, .bulk, .array:
            unreachable(r)
        }
    }

    /// Redis did not answer the SET (down, timed out, refused): refuse the write, or go on with the host's lease.
    private func unreachable(_ r: Request) {
        link.count(.unreachable)
        switch FleetPolicy.leaseUnreachable(link.state.config.onRedisDown) {
        case .refuse:
            finish(r) { $0.writer.leaseStoreUnreachable() }
            local.release(r.resource, letExpire: false)
        case .local:
            link.count(.local)
            r.stage = .held(fleet: false)
            held[r.resource] = r
            r.writer.leaseGranted()
        }
    }

    /// Forgets a request that will not hold the lease, then tells its writer.
    fileprivate func finish(_ r: Request, tell: (Request) -> Void) {
        requests.removeValue(forKey: ObjectIdentifier(r.writer))
        tell(r)
    }

    private func freeInRedis(_ r: Request) {
        let sent = link.command([Array("EVAL".utf8), FleetProtocol.releaseScript, Array("1".utf8), r.key, r.token]) {
            [link] reply in
            if case .integer(1) = reply {
                link.count(.released)
            } else if case .integer(0) = reply {
                link.count(.expired)
                FleetState.log(
                    "etag-proxy: fleet: a write lease expired while its write was at the upstream "
                        + "(raise concurrency.lease_ttl above the upstream's slowest write)\n")
            }
        }
        _ = sent  // unreachable: the lease expires by itself after lease_ttl
    }

    private func scheduleAsk(_ at: UInt64) {
        guard !closed else { return }
        if askScheduled == 0 || at < askScheduled {
            askScheduled = at
            uv_timer_start(askTimer, onFleetAskTimer, at > now ? at - now : 0, 0)
        }
    }

    fileprivate func askDue() {
        askScheduled = 0
        let t = now
        var next: UInt64 = 0
        for r in Array(requests.values) {
            guard case .due(let at) = r.stage else { continue }
            if at <= t {
                ask(r)
            } else {
                next = next == 0 ? at : min(next, at)
            }
        }
        if next != 0 { scheduleAsk(next) }
    }

    fileprivate func renew() {
        for r in held.values {
            guard case .held(fleet: true) = r.stage else { continue }
            link.command(
                [
                    Array("EVAL".utf8), FleetProtocol.renewScript, Array("1".utf8), r.key, r.token,
                    Array(String(ttl).utf8),
                ]
            ) { [link] reply in
                if case .integer(0) = reply {
                    link.count(.expired)
                    FleetState.log("etag-proxy: fleet: a held write lease had expired before it was renewed\n")
                }
            }
        }
    }
}

private func onFleetAskTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<FleetLeases>.fromOpaque(h!.pointee.data).takeUnretainedValue().askDue()
}

private func onFleetRenewTimer(_ h: UnsafeMutablePointer<uv_timer_t>?) {
    Unmanaged<FleetLeases>.fromOpaque(h!.pointee.data).takeUnretainedValue().renew()
}

import EtagCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the fleet mode of one process shares across its workers: the settings, this process's origin (the
/// sender named in its invalidation messages), whether its subscriber hears the fleet's invalidations now, and
/// the once-only log lines. Any thread (atomics only).
final class FleetState: Sendable {
    let config: ProxyConfig.Fleet
    /// `timeouts.redis` (restart-only) and `cache.ttl` at start (how long a URI's generation is kept in Redis).
    let timeoutMs: Int
    let cacheTTL: Int
    /// Random per process: a process skips its own invalidation messages (it applied them already).
    let origin = UInt64.random(in: 1...UInt64.max)
    private let subscribedFlag = Atomic<Bool>(false)
    private let serials = Atomic<UInt64>(0)
    private let downLogged = Atomic<Bool>(false)

    init(config: ProxyConfig) {
        self.config = config.fleet
        timeoutMs = config.timeouts.redis
        cacheTTL = config.cache.ttl
    }

    /// The subscriber is subscribed: every invalidation published from now on reaches this process.
    var subscribed: Bool {
        get { subscribedFlag.load(ordering: .acquiring) }
        set { subscribedFlag.store(newValue, ordering: .releasing) }
    }

    /// Whether a fresh local entry may answer a conditional read now (`FleetPolicy.answersFromCache`).
    var answersFromCache: Bool { FleetPolicy.answersFromCache(config.onRedisDown, subscribed: subscribed) }

    /// A lease owner token no other lease of the fleet has.
    func nextToken() -> [UInt8] {
        FleetProtocol.token(origin: origin, serial: serials.add(1, ordering: .relaxed).newValue)
    }

    /// Redis became unreachable (said once until it is reachable again) or reachable again.
    func noteRedis(up: Bool, reason: String) {
        if up {
            if downLogged.exchange(false, ordering: .relaxed) {
                Self.log("etag-proxy: fleet: Redis \(config.redis?.description ?? "") is reachable again\n")
            }
        } else if !downLogged.exchange(true, ordering: .relaxed) {
            let then =
                config.onRedisDown == .failClosed
                ? "leased writes are answered 503 and conditional reads revalidated with the upstream until it is back"
                : "falling back to this host's leases and invalidation until it is back"
            Self.log(
                "etag-proxy: fleet: Redis \(config.redis?.description ?? "") is unreachable (\(reason)): \(then)\n")
        }
    }

    static func log(_ s: String) {
        var bytes = Array(s.utf8)
        bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}

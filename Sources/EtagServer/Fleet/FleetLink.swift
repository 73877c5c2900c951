internal import CLibUV
import EtagCore

/// A worker's way to the fleet's Redis: its command connection, the process's fleet state and the worker's
/// counters. Shared by the worker's `FleetLeases` and `FleetInvalidation`.
///
/// Ownership: one per worker, made and used on its thread only; owns the `RedisConnection` (closed by `close`).
final class FleetLink: RedisConnectionDelegate {
    let state: FleetState
    let connection: RedisConnection
    let metrics: WorkerMetrics
    var name: String { state.config.name }

    init(loop: UnsafeMutablePointer<uv_loop_t>, state: FleetState, metrics: WorkerMetrics) {
        self.state = state
        self.metrics = metrics
        connection = RedisConnection(
            loop: loop, endpoint: state.config.redis!, password: state.config.password, timeoutMs: state.timeoutMs)
        connection.delegate = self
        connection.start()
    }

    var isUp: Bool { connection.isUp }

    /// Sends a command (see `RedisConnection.command`).
    @discardableResult
    func command(_ args: [[UInt8]], _ done: @escaping (RedisReply?) -> Void) -> Bool {
        connection.command(args, done)
    }

    func count(_ r: MetricsLayout.FleetLeaseResult) { metrics.add(MetricsLayout.fleetLease(r)) }
    func count(_ d: MetricsLayout.FleetInvalidationDirection) { metrics.add(MetricsLayout.fleetInvalidation(d)) }

    func redisUp(_ c: RedisConnection) { state.noteRedis(up: true, reason: "") }
    func redisDown(_ c: RedisConnection, reason: String) { state.noteRedis(up: false, reason: reason) }

    func close() { connection.close() }
}

/// Invalidation for a fleet: the URI's generation is bumped in this host's region at once, then the fleet's
/// script counts it in Redis and publishes it, and every other replica's subscriber applies it to its region.
/// The answer to the write does not wait for Redis: the staleness another replica may show is the propagation
/// delay (README, "Running a fleet"). Redis unreachable: applied here only, counted `unsent`. Worker thread only.
final class FleetInvalidation: CacheInvalidation {
    private let local: SharedMemoryInvalidation
    private let link: FleetLink

    init(local: SharedMemoryInvalidation, link: FleetLink) {
        self.local = local
        self.link = link
    }

    func invalidate(uri: Digest20) {
        local.invalidate(uri: uri)
        let s = link.state
        let keep = String(max(s.cacheTTL, 1_000) + 60_000)
        let sent = link.command(
            [
                Array("EVAL".utf8), FleetProtocol.invalidateScript, Array("1".utf8),
                FleetProtocol.generationKey(s.config.name, uri), FleetProtocol.channel(s.config.name),
                FleetProtocol.message(uri: uri, origin: s.origin), Array(keep.utf8),
            ]
        ) { [link] reply in
            if case .integer = reply { link.count(.sent) } else { link.count(.unsent) }
        }
        if !sent { link.count(.unsent) }
    }
}

internal import CLibUV
import EtagCache
import EtagCore

/// The process's subscription to the fleet's invalidation channel: every message from another process is applied
/// to this host's region (`SharedCache.invalidate`), so a 304 from the cache never waits on Redis. While the
/// subscription is down, messages may be missed: the region's epoch is bumped when it drops and again when it is
/// back (every local entry stale), and `FleetState.subscribed` is false in between (`fail_closed`: conditional
/// reads are revalidated with the upstream).
///
/// Ownership: one per process, made and used on the first worker's loop thread; owns its `RedisConnection`
/// (closed by `close`).
final class FleetSubscriber: RedisConnectionDelegate {
    private let state: FleetState
    private let cache: SharedCache
    private let metrics: WorkerMetrics
    private let connection: RedisConnection

    init(loop: UnsafeMutablePointer<uv_loop_t>, state: FleetState, cache: SharedCache, metrics: WorkerMetrics) {
        self.state = state
        self.cache = cache
        self.metrics = metrics
        connection = RedisConnection(
            loop: loop, endpoint: state.config.redis!, password: state.config.password, timeoutMs: state.timeoutMs)
        connection.delegate = self
        connection.subscribe(FleetProtocol.channel(state.config.name)) { [unowned(unsafe) self] m in self.received(m) }
        connection.start()
    }

    private func received(_ message: [UInt8]) {
        guard let m = FleetProtocol.parse(message), m.origin != state.origin else { return }
        cache.invalidate(uri: m.uri)
        metrics.add(MetricsLayout.fleetInvalidation(.received))
    }

    func redisUp(_ c: RedisConnection) {
        cache.invalidateAll()  // what was stored while unsubscribed may have missed a message
        state.subscribed = true
        state.noteRedis(up: true, reason: "")
    }

    func redisDown(_ c: RedisConnection, reason: String) {
        let was = state.subscribed
        state.subscribed = false
        if was { cache.invalidateAll() }  // messages in flight when it dropped are lost
        state.noteRedis(up: false, reason: reason)
    }

    func close() {
        connection.close()
        state.subscribed = false
    }
}

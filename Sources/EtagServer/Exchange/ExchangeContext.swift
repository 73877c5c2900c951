internal import CLibUV
import EtagCache
import EtagCore
import EtagHTTP
#if canImport(Glibc)
import Glibc
#endif

/// What the exchanges of one worker share: the settings, the shared-memory cache and the worker's metrics,
/// single-flight's table, the write leases, the access log, the hashers and scratch memory they reuse, the Date.
/// The worker owns one and never looks inside; the exchanges reach it through their connection's worker.
///
/// Worker thread only (the cache and the 304 field memo are themselves safe from any thread; the metrics are read by the
/// admin thread, see `WorkerMetrics`).
final class ExchangeContext {
    /// Replaced on the worker's thread by a reload (SIGHUP). Used by every exchange, only on the worker's thread:
    /// their dynamic exclusivity checks are left out.
    @exclusivity(unchecked) var settings: ExchangeSettings
    @exclusivity(unchecked) var accessLog: AccessLog
    /// Whether `accessLog` writes lines (checked before touching it, on every exchange).
    private(set) var logging: Bool
    /// The shared-memory ETag table (shared by all workers and processes). Set once before the loop runs.
    var cache: SharedCache!
    let metrics: WorkerMetrics
    /// The 304 field sets this process has seen, by digest (process memory, shared by the workers).
    let notModifiedFields: NotModifiedFieldsMemo
    /// This worker's share of `limits.held_memory`.
    let heldMemory: HeldMemoryCredit
    /// For cache keys (one-shot, synchronous use only).
    let keyHasher = SHA1Hasher()
    /// Single-flight: GET/HEAD fetches in progress on this worker, by cache key.
    var flights: [Digest20: Flight] = [:]
    /// Memory for the quoted ETag of a 304 answered from the cache (`Digest20.quotedETag(reusing:)`).
    /// The two scratch buffers are passed `inout` only to pure writers that cannot reach this context, on the
    /// worker's thread: their dynamic exclusivity checks (~80 instructions each, three per cached 304) are left out.
    @exclusivity(unchecked) var tagScratch: [UInt8] = []
    /// Memory for heads written and sent at once (see `ByteWriter(reusing:)`).
    @exclusivity(unchecked) var headScratch: [UInt8] = []
    /// This worker's `X-Request-Id`s for requests that bring none.
    let requestIds = RequestIDGenerator(seed: UInt64.random(in: 1...UInt64.max))
    /// Body hashers not in use by an exchange (taken and given back without calling out: no dynamic exclusivity
    /// check).
    @exclusivity(unchecked) private var idleHashers: [SHA1Hasher] = []
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private var leaseService: (any WriteLeases)?
    private var dateSecond = -1
    private var dateBytes: [UInt8] = []

    init(
        loop: UnsafeMutablePointer<uv_loop_t>, settings: ExchangeSettings, accessLog: AccessLog,
        metrics: WorkerMetrics, notModifiedFields: NotModifiedFieldsMemo, heldMemory: HeldMemoryCredit
    ) {
        self.loop = loop
        self.settings = settings
        self.accessLog = accessLog
        logging = accessLog.sink != nil
        self.metrics = metrics
        self.notModifiedFields = notModifiedFields
        self.heldMemory = heldMemory
    }

    /// Fleet mode (`fleet.redis`): the process's fleet state, set once before the loop runs; nil: one host.
    var fleetState: FleetState?
    /// This worker's link to the fleet's Redis, and the process's subscriber on the first worker (made on the
    /// worker's thread by `startFleet`).
    private var fleetLink: FleetLink?
    private var subscriber: FleetSubscriber?

    /// Connects to the fleet's Redis (on the worker's thread, before its loop runs).
    func startFleet(subscribe: Bool) {
        guard let state = fleetState, fleetLink == nil else { return }
        fleetLink = FleetLink(loop: loop, state: state, metrics: metrics)
        if subscribe { subscriber = FleetSubscriber(loop: loop, state: state, cache: cache, metrics: metrics) }
    }

    /// The write leases of this worker's guarded writes (created on first use, once `cache` is set): the host's,
    /// behind the fleet's in fleet mode.
    var leases: any WriteLeases {
        if let l = leaseService { return l }
        let host = SharedMemoryLeases(loop: loop, cache: cache, ttl: settings.leaseTTL, maxWait: settings.leaseWait)
        let l: any WriteLeases =
            fleetLink.map {
                FleetLeases(loop: loop, local: host, link: $0, ttl: settings.leaseTTL, maxWait: settings.leaseWait)
            } ?? host
        leaseService = l
        return l
    }

    /// How this worker's successful writes invalidate stored tags (created on first use, once `cache` is set).
    var invalidation: any CacheInvalidation {
        if let i = invalidationService { return i }
        let host = SharedMemoryInvalidation(cache: cache)
        let i: any CacheInvalidation = fleetLink.map { FleetInvalidation(local: host, link: $0) } ?? host
        invalidationService = i
        return i
    }
    private var invalidationService: (any CacheInvalidation)?

    /// A reload: new exchanges use these settings and this access log.
    func apply(_ new: ExchangeSettings, accessLogFormat: AccessLogFormat, logging: Bool) {
        settings = new
        accessLog.flush(metrics)
        accessLog = AccessLog(format: accessLogFormat, enabled: logging, sink: accessLog.sharedSink)
        self.logging = accessLog.sink != nil
        leaseService?.configure(ttl: new.leaseTTL, maxWait: new.leaseWait)
    }

    /// Closes the lease service's and the fleet's handles (the worker is finishing).
    func close() {
        leaseService?.close()
        subscriber?.close()
        fleetLink?.close()
    }

    /// The current IMF-fixdate, recomputed once per second.
    var date: [UInt8] {
        let now = time(nil)
        if now != dateSecond {
            dateSecond = now
            dateBytes = HTTPDate.format(epochSeconds: now)
        }
        return dateBytes
    }

    func takeHasher() -> SHA1Hasher { idleHashers.popLast() ?? SHA1Hasher() }

    /// - Parameter used: the hasher holds a partial digest (an exchange ended early) and must be reset.
    func returnHasher(_ h: SHA1Hasher, used: Bool = true) {
        if used { h.reset() }
        if idleHashers.count < 64 { idleHashers.append(h) }
    }
}

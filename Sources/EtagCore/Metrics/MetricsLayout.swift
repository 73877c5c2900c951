import EtagHTTP

/// Where each metric of one worker lives in its flat array of counter words. A worker only adds to its own words
/// (no lock, no shared atomic per request); the admin endpoint sums the workers' arrays word by word and renders
/// the sum (`MetricsExposition`). Pure: indices and bucket bounds only.
public enum MetricsLayout {
    /// The `method` label values, in `HTTPMethod` order (`other` for any other method or an unparsed request).
    public static let methodNames: [String] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
    ]

    public static func methodIndex(_ m: HTTPMethod?) -> Int {
        switch m {
        case .get: return 0
        case .head: return 1
        case .post: return 2
        case .put: return 3
        case .patch: return 4
        case .delete: return 5
        case .options: return 6
        case .trace: return 7
        case .connect: return 8
        case .other, nil: return 9
        }
    }

    /// `methodNames.count`, as a literal so that the offsets below fold into constants (a static `let` computed
    /// from an array would be initialized lazily, at a cost on every use from the request path).
    public static var methodCount: Int { 10 }

    /// Status codes 100…599, one word each.
    public static var statusSlots: Int { 500 }

    static func statusSlot(_ status: Int) -> Int { min(max(status, 100), 599) - 100 }

    /// Upper bounds (seconds) of the duration histograms' buckets, the last one `+Inf` implied.
    public static let durationBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// `durationBounds.count`, as a literal (see `methodCount`).
    public static var boundCount: Int { 16 }
    /// A histogram's words: one per bucket (not cumulative; +Inf last), then the sum in nanoseconds, the count.
    public static var histogramWords: Int { boundCount + 3 }

    /// The bucket of a duration (the first whose bound is not below it): `durationBounds` in nanoseconds, as
    /// literals (compared without touching the array).
    public static func bucket(ns: UInt64) -> Int {
        switch ns {
        case ...100_000: return 0
        case ...250_000: return 1
        case ...500_000: return 2
        case ...1_000_000: return 3
        case ...2_500_000: return 4
        case ...5_000_000: return 5
        case ...10_000_000: return 6
        case ...25_000_000: return 7
        case ...50_000_000: return 8
        case ...100_000_000: return 9
        case ...250_000_000: return 10
        case ...500_000_000: return 11
        case ...1_000_000_000: return 12
        case ...2_500_000_000: return 13
        case ...5_000_000_000: return 14
        case ...10_000_000_000: return 15
        default: return 16
        }
    }

    public enum UpstreamKind: Int, CaseIterable, Sendable {
        case forward, prefetch, refetch
        public var label: String { ["forward", "prefetch", "refetch"][rawValue] }
    }

    /// The cache's part in a GET/HEAD (the Cache-Status outcome, RFC 9211): answered from it, or why it was not.
    public enum CacheLookupResult: Int, CaseIterable, Sendable {
        case hit, miss, stale, varyMiss, request, bypass
        public var label: String { ["hit", "miss", "stale", "vary_miss", "request", "bypass"][rawValue] }

        /// Why a read was forwarded (the Cache-Status `fwd` parameter).
        public init(_ reason: ForwardReason) {
            switch reason {
            case .miss: self = .miss
            case .stale: self = .stale
            case .request: self = .request
            case .varyMiss: self = .varyMiss
            case .bypass: self = .bypass
            }
        }
    }

    /// How a write in `concurrency.methods` went: its If-Match held, failed (a lost update prevented), was
    /// required and missing, was not checked (no condition sent), or could not be checked.
    public enum WriteCheckResult: Int, CaseIterable, Sendable {
        case passed, preconditionFailed, preconditionRequired, relayed, error
        public var label: String {
            ["passed", "precondition_failed", "precondition_required", "relayed", "error"][rawValue]
        }
    }

    /// Plain counters without labels.
    public enum Counter: Int, CaseIterable, Sendable {
        case notModifiedFromCache, notModifiedFromUpstream, cacheStores, cacheEvictions, cacheInvalidations
        case leaseTimeouts, hashedResponses, accessLogDropped
        /// TLS handshakes completed on the listener (full / resumed) and failed (plaintext, bad hello, timeout…).
        case listenerTLSFull, listenerTLSResumed, listenerTLSFailed
        /// TLS handshakes with the upstream, the same three.
        case upstreamTLSFull, upstreamTLSResumed, upstreamTLSFailed
        /// Stores the admission filter refused (the key was asked for less often than the entry it would evict).
        case cacheAdmissionsRefused
        /// Re-fetches answered on the connection of their write, sent right behind it (`concurrency.pipeline_refetch`).
        case refetchesPipelined
    }

    /// Levels a worker sets (connections now open); summed over the workers like the counters.
    public enum Level: Int, CaseIterable, Sendable {
        case clientConnections, upstreamConnections, upstreamIdle
    }

    /// What a fleet write lease request to Redis came to: taken, held by another replica (asked again), freed,
    /// found expired at release or renewal (the write outlived its lease), Redis unreachable, or granted on this
    /// host's lease only (`fleet.on_redis_down: local`).
    public enum FleetLeaseResult: Int, CaseIterable, Sendable {
        case acquired, busy, released, expired, unreachable, local
        public var label: String { ["acquired", "busy", "released", "expired", "unreachable", "local"][rawValue] }
    }

    /// Fleet invalidations published by this replica, applied from another's, or not published (Redis
    /// unreachable: applied locally only).
    public enum FleetInvalidationDirection: Int, CaseIterable, Sendable {
        case sent, received, unsent
        public var label: String { ["sent", "received", "unsent"][rawValue] }
    }

    // MARK: offsets

    public static var requests: Int { 0 }
    public static var requestDuration: Int { requests + methodCount * statusSlots }
    public static var upstreamRequests: Int { requestDuration + histogramWords }
    /// Per kind: the status slots, then one word for "no answer" (`code="error"`).
    public static var upstreamPerKind: Int { statusSlots + 1 }
    static var kindCount: Int { 3 }
    public static var upstreamDuration: Int { upstreamRequests + kindCount * upstreamPerKind }
    public static var cacheLookups: Int { upstreamDuration + kindCount * histogramWords }
    public static var writeChecks: Int { cacheLookups + 6 }
    public static var leaseWait: Int { writeChecks + 5 }
    public static var rejected: Int { leaseWait + histogramWords }
    public static var counters: Int { rejected + statusSlots }
    public static var levels: Int { counters + 16 }
    public static var fleetLeases: Int { levels + 3 }
    public static var fleetInvalidations: Int { fleetLeases + 6 }
    /// Words per worker.
    public static var wordCount: Int { fleetInvalidations + 3 }

    public static func request(method: HTTPMethod?, status: Int) -> Int {
        requests + methodIndex(method) * statusSlots + statusSlot(status)
    }

    /// `status` nil: the upstream gave no answer.
    public static func upstreamRequest(_ kind: UpstreamKind, status: Int?) -> Int {
        let base = upstreamRequests + kind.rawValue * upstreamPerKind
        guard let status, status >= 100, status <= 599 else { return base + statusSlots }
        return base + statusSlot(status)
    }

    public static func upstreamDuration(_ kind: UpstreamKind) -> Int {
        upstreamDuration + kind.rawValue * histogramWords
    }

    public static func cacheLookup(_ r: CacheLookupResult) -> Int { cacheLookups + r.rawValue }
    public static func writeCheck(_ r: WriteCheckResult) -> Int { writeChecks + r.rawValue }
    public static func rejected(status: Int) -> Int { rejected + statusSlot(status) }
    public static func counter(_ c: Counter) -> Int { counters + c.rawValue }
    public static func level(_ l: Level) -> Int { levels + l.rawValue }
    public static func fleetLease(_ r: FleetLeaseResult) -> Int { fleetLeases + r.rawValue }
    public static func fleetInvalidation(_ d: FleetInvalidationDirection) -> Int { fleetInvalidations + d.rawValue }
}

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

    /// Status codes 100…599, one word each.
    public static let statusSlots = 500

    static func statusSlot(_ status: Int) -> Int { min(max(status, 100), 599) - 100 }

    /// Upper bounds (seconds) of the duration histograms' buckets, the last one `+Inf` implied.
    public static let durationBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    static let boundsNs: [UInt64] = durationBounds.map { UInt64($0 * 1e9) }
    /// A histogram's words: one per bucket (not cumulative; +Inf last), then the sum in nanoseconds, the count.
    public static let histogramWords = durationBounds.count + 3

    /// The bucket of a duration (the first whose bound is not below it).
    public static func bucket(ns: UInt64) -> Int {
        var i = 0
        while i < boundsNs.count && ns > boundsNs[i] { i += 1 }
        return i
    }

    public enum UpstreamKind: Int, CaseIterable, Sendable {
        case forward, prefetch, refetch
        public var label: String { ["forward", "prefetch", "refetch"][rawValue] }
    }

    /// The cache's part in a GET/HEAD (the Cache-Status outcome, RFC 9211): answered from it, or why it was not.
    public enum CacheLookupResult: Int, CaseIterable, Sendable {
        case hit, miss, stale, varyMiss, request
        public var label: String { ["hit", "miss", "stale", "vary_miss", "request"][rawValue] }

        /// Why a read was forwarded (the Cache-Status `fwd` parameter).
        public init(_ reason: ForwardReason) {
            switch reason {
            case .miss: self = .miss
            case .stale: self = .stale
            case .request: self = .request
            case .varyMiss: self = .varyMiss
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
    }

    /// Levels a worker sets (connections now open); summed over the workers like the counters.
    public enum Level: Int, CaseIterable, Sendable {
        case clientConnections, upstreamConnections, upstreamIdle
    }

    // MARK: offsets

    public static let requests = 0
    public static let requestDuration = requests + methodNames.count * statusSlots
    public static let upstreamRequests = requestDuration + histogramWords
    /// Per kind: the status slots, then one word for "no answer" (`code="error"`).
    public static let upstreamPerKind = statusSlots + 1
    public static let upstreamDuration = upstreamRequests + UpstreamKind.allCases.count * upstreamPerKind
    public static let cacheLookups = upstreamDuration + UpstreamKind.allCases.count * histogramWords
    public static let writeChecks = cacheLookups + CacheLookupResult.allCases.count
    public static let leaseWait = writeChecks + WriteCheckResult.allCases.count
    public static let rejected = leaseWait + histogramWords
    public static let counters = rejected + statusSlots
    public static let levels = counters + Counter.allCases.count
    /// Words per worker.
    public static let wordCount = levels + Level.allCases.count

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
}

import EtagCore
import EtagHTTP

/// What the exchange in flight on a client connection has done so far: its request, what it answered, for how
/// long — read by its answers and by its access-log line. A value, replaced whole by
/// `ClientConnection.beginExchange`, so no field is reset by hand.
struct ExchangeRecord {
    var request: RequestHead?
    /// The request's method, kept apart like the version (nil: no request was parsed).
    var method: HTTPMethod?
    /// The request's version, kept apart so the hot paths need not copy `request` to read it.
    var clientIsHTTP11 = true
    /// Keep the connection open after this exchange (RFC 9112 §9.3).
    var keepAliveAfter = true
    /// `uv_hrtime()` nanoseconds when the request head arrived.
    var start: UInt64 = 0
    /// How long the exchange took, set when it ends.
    var durationNs: UInt64 = 0
    var statusSent = 0
    var bodyBytesSent: UInt64 = 0
    /// The status the upstream answered, 0 when it was not asked.
    var upstreamStatus = 0
    /// Time spent on upstream requests (forward, pre-fetch, re-fetch).
    var upstreamNs: UInt64 = 0
    /// The Cache-Status field line sent, if any (`cacheHit`: `CacheStatus.hit`, kept as a flag on the hot path).
    var cacheStatusLine: [UInt8]? = nil
    var cacheHit = false
    /// How the write check went, for a write in `concurrency.methods`.
    var writeCheck: MetricsLayout.WriteCheckResult?
}

import EtagCore
import EtagHTTP

/// Values every exchange on a worker needs, computed once from the config. A class: an exchange reads many
/// of them, and a reference costs one retain where a copy of the struct would retain each member.
final class ExchangeSettings: Sendable {
    let rules: ForwardingRules
    let requestLimits: HTTPLimits
    let responseLimits: HTTPLimits
    let maxBodySize: UInt64
    let bufferSize: Int
    let timeouts: ProxyConfig.Timeouts
    let poolKeepalive: Int
    let cacheTTLms: Int
    let maxHashedBody: Int
    let etagMode: UpstreamETagMode
    let invalidateParent: Bool
    let collapse: Bool
    let concurrencyEnabled: Bool
    let enforceIfMatch: Bool
    let guardedMethods: [HTTPMethod]
    let etagAfterWrite: ETagAfterWrite
    let pipelineRefetch: Bool
    let leaseTTL: Int
    let leaseWait: Int
    let keyBuilder: CacheKeyBuilder
    let keyHeaders: [[UInt8]]
    /// The listener's and the upstream's TLS contexts (built by `TLSContexts`, nil where plaintext).
    let tls: TLSContexts
    /// SNI and the name the upstream's certificate must carry.
    let upstreamServerName: String

    init(config: ProxyConfig, tls: TLSContexts = .none) {
        self.tls = tls
        upstreamServerName = config.upstreamTLS.serverName ?? config.upstream.host
        rules = ForwardingRules(config: config)
        requestLimits = HTTPLimits(
            maxHeadSize: config.limits.maxHeaderSize, maxHeaderCount: config.limits.maxHeaderCount,
            maxTrailerSize: config.limits.maxHeaderSize)
        responseLimits = HTTPLimits(
            maxHeadSize: config.limits.maxUpstreamHeaderSize, maxHeaderCount: config.limits.maxHeaderCount,
            maxTrailerSize: config.limits.maxUpstreamHeaderSize)
        maxBodySize = UInt64(config.limits.maxBodySize)
        bufferSize = config.limits.bufferSize
        timeouts = config.timeouts
        poolKeepalive = config.upstreamPool.keepalive
        cacheTTLms = config.cache.ttl
        maxHashedBody = config.etag.maxBody
        etagMode = config.etag.upstream
        invalidateParent = config.cache.invalidateParent
        collapse = config.cache.collapse
        concurrencyEnabled = config.concurrency.enabled
        enforceIfMatch = config.concurrency.enforceIfMatch
        guardedMethods = config.concurrency.methods
        etagAfterWrite = config.concurrency.etagAfterWrite
        pipelineRefetch = config.concurrency.pipelineRefetch
        leaseTTL = config.concurrency.leaseTTL
        leaseWait = config.concurrency.leaseWait
        // Keys name the resource as the upstream receives it: the client's Host only when it is forwarded.
        keyBuilder = CacheKeyBuilder(
            origin: config.upstream.description, keyHeaders: config.cache.keyHeaders,
            includeHost: config.forwarding.preserveHost, ignoreTrailingSlash: config.keys.ignoreTrailingSlash)
        keyHeaders = config.cache.keyHeaders.map { Array($0.utf8) }
    }
}

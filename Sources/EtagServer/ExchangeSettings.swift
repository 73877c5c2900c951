import EtagCore
import EtagHTTP

/// Values every exchange on a worker needs, computed once from the config.
struct ExchangeSettings: Sendable {
    let rules: ForwardingRules
    let requestLimits: HTTPLimits
    let responseLimits: HTTPLimits
    let maxBodySize: UInt64
    let bufferSize: Int
    let timeouts: ProxyConfig.Timeouts
    let keepaliveIdle: Int

    init(config: ProxyConfig) {
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
        keepaliveIdle = config.upstreamPool.keepalive
    }
}

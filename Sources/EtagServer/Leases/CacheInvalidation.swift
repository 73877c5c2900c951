import EtagCache
import EtagCore

/// How a successful unsafe request invalidates the stored representations of a URI for everyone who answers
/// from them (RFC 9111 §4.4): the matching interface of `WriteLeases`. The exchange computes the URIs (target,
/// Location, Content-Location, parent); an implementation makes every replica that shares the guarantee see it.
/// Worker thread only.
protocol CacheInvalidation: AnyObject {
    /// Every stored variant of `uri` (a `CacheKeyBuilder.uriDigest`) is stale from now on.
    func invalidate(uri: Digest20)
}

/// Invalidation for the processes of one host: a bump of the URI's generation in the shared region, seen by every
/// worker and process that maps it.
final class SharedMemoryInvalidation: CacheInvalidation {
    private let cache: SharedCache

    init(cache: SharedCache) { self.cache = cache }

    func invalidate(uri: Digest20) { cache.invalidate(uri: uri) }
}

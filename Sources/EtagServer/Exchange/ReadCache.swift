import EtagCache
import EtagCore
import EtagHTTP

/// What a GET/HEAD exchange knows about the cache (RFC 9110 §13, RFC 9111).
struct ReadState {
    var conditions: Conditions
    /// The key digest for the request's fixed key fields (a Vary marker may redirect to a second key).
    var key: Digest20
    var uri: Digest20
    /// The URI's generation when the request arrived: an invalidation during the fetch makes the stored
    /// entry stale at once.
    var generation: UInt32
    /// RFC 9211 `fwd` reason: why the upstream is asked.
    var forward: ForwardReason
}

/// What the shared cache answers for a read.
enum CacheLookup {
    /// A fresh entry satisfies If-None-Match: 304 with this quoted tag and the 200's 304 fields.
    case notModified(quotedTag: [UInt8], fields: [UInt8])
    /// A fresh entry fails If-Match: 412 naming the current tag.
    case preconditionFailed(quotedTag: [UInt8])
    /// Ask the upstream (the read's state is set).
    case forward
}

/// The shared-memory cache as reads and writes use it: lookup, store and invalidation. Stateless; every call
/// runs on the calling worker's thread with its exchange context's cache handle and scratch memory.
enum ReadCache {
    /// Looks the representation up: when a fresh entry decides the preconditions, the answer is local
    /// (304 or 412); otherwise what the forward needs.
    static func lookup(
        _ head: RequestHead, bodyDone: Bool, context w: ExchangeContext, state: inout ReadState?
    ) -> CacheLookup {
        let settings = w.settings
        let keys = settings.keyBuilder
        let conditions = Conditions(head.head)
        let uri = keys.uriDigest(head)
        let generation = w.cache.generation(uri: uri)
        var key = keys.keyDigest(head, hasher: w.keyHasher)
        var forward = ForwardReason.miss
        // Without a tag condition the entry decides nothing now: the fetch below stores the new tag anyway. A fleet
        // replica that may be missing invalidations answers nothing from its region (`FleetPolicy`).
        let bypass = !conditions.isEmpty && w.fleetState.map { !$0.answersFromCache } == true
        if bypass { forward = .bypass }
        var found = conditions.isEmpty || bypass ? nil : w.cache.lookup(key: key)
        if let marker = found, let names = marker.varyNames {
            // The upstream varies on more fields than the fixed key: look up the variant.
            let extra = names.split(separator: ",").map { Array($0.utf8) }
            key = keys.keyDigest(head, vary: extra, hasher: w.keyHasher)
            found = marker.generation == generation ? w.cache.lookup(key: key) : nil
            if found == nil { forward = .varyMiss }
        }
        if let entry = found {
            if entry.generation != generation || !entry.isFresh(now: SharedCache.now) {
                forward = .stale
            } else if entry.mustRevalidate {
                forward = .request
            } else if !conditions.isEmpty && bodyDone {
                entry.etag.quotedETag(reusing: &w.tagScratch)
                let quoted = w.tagScratch
                let current = EntityTag(opaque: quoted[1..<41])
                switch evaluatePreconditions(method: head.method, conditions, current: current) {
                case .notModified:
                    // RFC 9110 §15.4.5: the 304 repeats the 200's Cache-Control, Content-Location, Expires and
                    // Vary; when another process stored the entry and this one has never seen that field set,
                    // the upstream is asked (its answer teaches it).
                    guard let fields = entry.fieldsDigest == 0 ? [] : w.notModifiedFields.get(entry.fieldsDigest)
                    else { break }
                    return .notModified(quotedTag: quoted, fields: fields)
                case .preconditionFailed:
                    return .preconditionFailed(quotedTag: quoted)
                case .proceed:
                    break
                }
            }
        }
        state = ReadState(conditions: conditions, key: key, uri: uri, generation: generation, forward: forward)
        return .forward
    }

    /// Stores `digest` as the current tag of `key` unless the upstream forbids it (no-store, private,
    /// Vary: *); honours max-age, no-cache and Vary. Returns whether it was stored.
    static func store(
        _ digest: Digest20, key primary: Digest20, generation: UInt32, response: ResponseHead,
        directives d: ResponseCacheDirectives, request req: RequestHead, context: ExchangeContext
    ) -> Bool {
        let settings = context.settings
        // RFC 9111 §5.2.2.5 no-store; §5.2.2.7 private (a shared cache does not store it); Vary: * never matches.
        guard !d.noStore, !d.isPrivate, !d.varyStar else { return false }
        var ttl = settings.cacheTTLms
        if let maxAge = d.maxAge { ttl = min(ttl, maxAge * 1000) }
        let now = SharedCache.now
        let fields = context.notModifiedFields.remember(
            ForwardingRules.notModifiedFields(response), hasher: context.keyHasher)
        let entry = CacheEntry(
            etag: digest, mustRevalidate: d.noCache || ttl <= 0, generation: generation, storedNs: now,
            expiresNs: now + UInt64(max(ttl, 0)) * 1_000_000, fieldsDigest: fields)
        let extra = d.vary.filter { !settings.keyHeaders.contains($0) }
        var key = primary
        var result: CacheStoreResult
        if extra.isEmpty {
            result = context.cache.store(key: key, entry: entry)
        } else {
            let names = extra.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ",")
            guard names.utf8.count < 48 else { return false }
            var marker = entry
            marker.varyNames = names
            context.cache.store(key: key, entry: marker)
            key = settings.keyBuilder.keyDigest(req, vary: extra, hasher: context.keyHasher)
            result = context.cache.store(key: key, entry: entry)
        }
        switch result {
        case .busy: return false
        case .refused:
            context.metrics.add(.cacheAdmissionsRefused)
            return false
        case .evicted: context.metrics.add(.cacheEvictions)
        case .stored: break
        }
        context.metrics.add(.cacheStores)
        return true
    }

    /// RFC 9111 §4.4: a 2xx/3xx answer to an unsafe method invalidates the target URI, the same-origin
    /// Location and Content-Location URIs, and (`cache.invalidate_parent`) the parent collection — for every
    /// worker and process sharing the region.
    static func invalidate(after response: ResponseHead, to req: RequestHead, context: ExchangeContext) {
        let settings = context.settings
        let b = req.head.bytes
        let host = req.hostRange.map { Array(b[$0]) } ?? []
        let path = Array(b[req.pathRange])
        var paths = [path]
        if settings.invalidateParent, let parent = CacheKeyBuilder.parent(of: path) { paths.append(parent) }
        for loc in ForwardingRules.locations(response) {
            if let p = CacheKeyBuilder.sameOriginPath(loc, host: host) { paths.append(p) }
        }
        for p in paths {
            context.invalidation.invalidate(uri: settings.keyBuilder.uriDigest(host: host, path: p))
        }
        context.metrics.add(.cacheInvalidations, UInt64(paths.count))
    }
}

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

/// RFC 9211 §2.2 `fwd` values the proxy uses.
enum ForwardReason {
    case miss, stale, request, varyMiss

    var text: StaticString {
        switch self {
        case .miss: return "miss"
        case .stale: return "stale"
        case .request: return "request"
        case .varyMiss: return "vary-miss"
        }
    }
}

extension ClientConnection {
    /// For a GET/HEAD: looks the representation up in the shared cache and, when a fresh entry decides the
    /// preconditions, answers 304 (or 412) without the upstream. Otherwise records what the forward needs.
    /// - Returns: true when the exchange was answered.
    func answerFromCache(_ head: RequestHead) -> Bool {
        let w = worker
        let keys = settings.keyBuilder
        let conditions = Conditions(head.head)
        let uri = keys.uriDigest(head)
        let generation = w.cache.generation(uri: uri)
        var key = keys.keyDigest(head, hasher: w.keyHasher)
        var forward = ForwardReason.miss
        // Without a tag condition the entry decides nothing now: the fetch below stores the new tag anyway.
        var found = conditions.isEmpty ? nil : w.cache.lookup(key: key)
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
                    guard let fields = notModifiedFields(entry) else { break }
                    notModifiedFromCache(quoted, fields: fields)
                    return true
                case .preconditionFailed:
                    fail(412, "the If-Match condition does not match the current representation", keepAlive: true)
                    return true
                case .proceed:
                    break
                }
            }
        }
        read = ReadState(conditions: conditions, key: key, uri: uri, generation: generation, forward: forward)
        return false
    }

    private func notModifiedFields(_ entry: CacheEntry) -> [UInt8]? {
        entry.fieldsDigest == 0 ? [] : worker.notModifiedFields.get(entry.fieldsDigest)
    }

    private func notModifiedFromCache(_ quotedTag: [UInt8], fields: [UInt8]) {
        worker.counters.add(.notModifiedFromCache)
        statusSent = 304
        writeHead { w in
            settings.rules.notModifiedHead(
                into: &w, etag: quotedTag, date: worker.date, fields: fields,
                extra: Self.cacheStatusHit, keepAlive: keepAliveAfter, clientIsHTTP11: clientIsHTTP11)
        }
        endExchange()
    }

    static let cacheStatusHit: [UInt8] = Array("Cache-Status: etag-proxy; hit\r\n".utf8)
    static let missStored: [UInt8] = Array("Cache-Status: etag-proxy; fwd=miss; fwd-status=200; stored\r\n".utf8)
    static let missNotStored: [UInt8] = Array("Cache-Status: etag-proxy; fwd=miss; fwd-status=200\r\n".utf8)

    /// The RFC 9211 Cache-Status line for a forwarded read.
    func cacheStatusLine(status: Int, stored: Bool) -> [UInt8] {
        guard let read else { return [] }
        if status == 200 && read.forward == .miss { return stored ? Self.missStored : Self.missNotStored }
        var w = ByteWriter(capacity: 80)
        w.append("Cache-Status: etag-proxy; fwd=")
        w.append(read.forward.text)
        w.append("; fwd-status=")
        w.append(decimal: status)
        if stored { w.append("; stored") }
        w.append("\r\n")
        return w.bytes
    }

    /// Stores the ETag of a 200 to a GET/HEAD unless the upstream forbids it. Returns whether it was stored.
    func storeInCache(_ digest: Digest20, response: ResponseHead) -> Bool {
        guard let read, request != nil else { return false }
        guard storeTag(digest, key: read.key, generation: read.generation, response: response) else { return false }
        worker.counters.add(.stored)
        return true
    }

    /// Stores `digest` as the current tag of `key` (honouring no-store, private, Vary, max-age, no-cache).
    func storeTag(_ digest: Digest20, key primary: Digest20, generation: UInt32, response: ResponseHead) -> Bool {
        guard let req = request else { return false }
        let d = ResponseCacheDirectives(response.head)
        // RFC 9111 §5.2.2.5 no-store; §5.2.2.7 private (a shared cache does not store it); Vary: * never matches.
        guard !d.noStore, !d.isPrivate, !d.varyStar else { return false }
        var ttl = settings.cacheTTLms
        if let maxAge = d.maxAge { ttl = min(ttl, maxAge * 1000) }
        let now = SharedCache.now
        let fields = worker.notModifiedFields.remember(
            ForwardingRules.notModifiedFields(response), hasher: worker.keyHasher)
        let entry = CacheEntry(
            etag: digest, mustRevalidate: d.noCache || ttl <= 0, generation: generation, storedNs: now,
            expiresNs: now + UInt64(max(ttl, 0)) * 1_000_000, fieldsDigest: fields)
        let extra = d.vary.filter { !settings.keyHeaders.contains($0) }
        var key = primary
        var result: Bool?
        if extra.isEmpty {
            result = worker.cache.store(key: key, entry: entry)
        } else {
            let names = extra.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ",")
            guard names.utf8.count < 48 else { return false }
            var marker = entry
            marker.varyNames = names
            worker.cache.store(key: key, entry: marker)
            key = settings.keyBuilder.keyDigest(req, vary: extra, hasher: worker.keyHasher)
            result = worker.cache.store(key: key, entry: entry)
        }
        guard let evicted = result else { return false }
        if evicted { worker.counters.add(.evicted) }
        return true
    }

    /// RFC 9111 §4.4: a 2xx/3xx answer to an unsafe method invalidates the target URI, the same-origin
    /// Location and Content-Location URIs, and (`cache.invalidate_parent`) the parent collection — for every
    /// worker and process sharing the region.
    func invalidateAfterWrite(_ response: ResponseHead) {
        guard let req = request else { return }
        let b = req.head.bytes
        let host = req.hostRange.map { Array(b[$0]) } ?? []
        let path = Array(b[req.pathRange])
        var paths = [path]
        if settings.invalidateParent, let parent = CacheKeyBuilder.parent(of: path) { paths.append(parent) }
        for loc in ForwardingRules.locations(response) {
            if let p = CacheKeyBuilder.sameOriginPath(loc, host: host) { paths.append(p) }
        }
        for p in paths {
            worker.cache.invalidate(uri: settings.keyBuilder.uriDigest(host: host, path: p))
        }
        worker.counters.add(.invalidated, UInt64(paths.count))
    }
}

import EtagHTTP

/// Cache keys as digests (no header value ever leaves this function in clear).
///
/// - The *URI digest* names a resource for invalidation: upstream origin, Host, path without query. Every query
///   variant of a path shares it, so invalidating `/persons` also invalidates `/persons?page=2` (over-
///   invalidation is safe; RFC 9111 §4.4 asks for at least the target URI).
/// - The *key digest* names one representation: origin, method class (GET and HEAD share it), Host, path and
///   query, the values of the representation-selecting headers (`cache.key_headers`), and of the headers the
///   upstream's Vary names.
public struct CacheKeyBuilder: Sendable {
    let origin: [UInt8]
    let keyHeaders: [[UInt8]]

    public init(origin: String, keyHeaders: [String]) {
        self.origin = Array(origin.utf8)
        self.keyHeaders = keyHeaders.map { Array($0.lowercased().utf8) }
    }

    /// The URI digest of `path` (query ignored) on `host`: two FNV-1a 64-bit hashes. It only indexes the
    /// generation counters and lease stripes, where a collision costs an extra invalidation or a shared lease,
    /// never a wrong answer — so it needs no cryptographic hash (the key digest, which does, is SHA-1).
    public func uriDigest(host: some Collection<UInt8>, path: some Collection<UInt8>) -> Digest20 {
        var h1: UInt64 = 0xcbf2_9ce4_8422_2325
        var h2: UInt64 = 0x8422_2325_cbf2_9ce4
        @inline(__always) func mix(_ c: UInt8) {
            h1 = (h1 ^ UInt64(c)) &* 0x0000_0100_0000_01B3
            h2 = (h2 ^ UInt64(c)) &* 0x0000_0100_0000_01B3 ^ (h2 >> 29)
        }
        for c in origin { mix(c) }
        mix(0)
        for c in host { mix(c | (c >= 0x41 && c <= 0x5A ? 0x20 : 0)) }
        mix(0)
        var any = false
        for c in path {
            if c == UInt8(ascii: "?") { break }
            mix(c)
            any = true
        }
        if !any { mix(UInt8(ascii: "/")) }
        return Digest20(a: h1, b: h2, c: UInt32(truncatingIfNeeded: (h1 >> 32) ^ h2))
    }

    /// The URI digest of a request's target.
    public func uriDigest(_ req: RequestHead) -> Digest20 {
        let b = req.head.bytes
        return uriDigest(host: req.hostRange.map { b[$0] } ?? b[0..<0], path: b[req.pathRange])
    }

    /// The key digest of a GET/HEAD request; `vary` adds the values of extra Vary-named fields; `path`
    /// replaces the target (the Location a POST created).
    public func keyDigest(_ req: RequestHead, vary: [[UInt8]] = [], path: [UInt8]? = nil, hasher: SHA1Hasher) -> Digest20 {
        let b = req.head.bytes
        hasher.update("k\0")
        hasher.update(origin)
        hasher.update("\0GET\0")
        if let h = req.hostRange { Self.updateLowercased(hasher, b[h]) }
        hasher.update("\0")
        if let path { hasher.update(path) } else { Self.update(hasher, b[req.pathRange]) }
        for name in keyHeaders { updateField(hasher, req.head, name) }
        if !vary.isEmpty {
            hasher.update("\0vary")
            for name in vary { updateField(hasher, req.head, name) }
        }
        return hasher.finish()
    }

    private static func update(_ hasher: SHA1Hasher, _ bytes: some Collection<UInt8>) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ hasher.update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        hasher.update(Array(bytes))
    }

    private static func updateLowercased(_ hasher: SHA1Hasher, _ bytes: some Collection<UInt8>) {
        if bytes.allSatisfy({ !($0 >= 0x41 && $0 <= 0x5A) }) { return update(hasher, bytes) }
        hasher.update(bytes.map { $0 | ($0 >= 0x41 && $0 <= 0x5A ? 0x20 : 0) })
    }

    private func updateField(_ hasher: SHA1Hasher, _ block: FieldBlock, _ name: [UInt8]) {
        hasher.update("\0")
        hasher.update(name)
        hasher.update(":")
        var first = true
        for f in block.fields where f.name.count == name.count {
            var same = true
            for (j, i) in f.name.enumerated() where block.bytes[i] | 0x20 != name[j] | 0x20 {
                same = false
                break
            }
            guard same else { continue }
            if !first { hasher.update(",") }
            Self.update(hasher, block.bytes[f.value])
            first = false
        }
    }

    /// The parent collection of a path: `/persons/1` → `/persons`, `/persons` → `/`.
    public static func parent(of path: [UInt8]) -> [UInt8]? {
        var p = Array(path.prefix { $0 != UInt8(ascii: "?") })
        while p.count > 1, p.last == UInt8(ascii: "/") { p.removeLast() }
        guard p.count > 1, let slash = p.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return slash == 0 ? [UInt8(ascii: "/")] : Array(p[..<slash])
    }

    /// The path of a Location / Content-Location value when it is on the same origin (a path, or an absolute
    /// URI whose authority is `host`); nil for another origin (RFC 9111 §4.4 invalidates only same-origin URIs).
    public static func sameOriginPath(_ value: [UInt8], host: [UInt8]) -> [UInt8]? {
        if value.first == UInt8(ascii: "/") {
            return value.count > 1 && value[1] == UInt8(ascii: "/") ? nil : value
        }
        let s = String(decoding: value, as: UTF8.self)
        for scheme in ["http://", "https://"] where s.lowercased().hasPrefix(scheme) {
            let rest = s.dropFirst(scheme.count)
            let authEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            guard rest[..<authEnd].lowercased() == String(decoding: host, as: UTF8.self).lowercased() else { return nil }
            let path = String(rest[authEnd...])
            return Array((path.isEmpty ? "/" : path).utf8)
        }
        return nil
    }
}

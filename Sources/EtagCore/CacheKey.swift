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

    /// The URI digest of `path` (query ignored) on `host`.
    public func uriDigest(host: some Collection<UInt8>, path: some Collection<UInt8>, hasher: SHA1Hasher) -> Digest20 {
        var w = ByteWriter(capacity: 128)
        w.append("u\0")
        w.append(bytes: origin)
        w.append("\0")
        for c in host { w.bytes.append(c | (c >= 0x41 && c <= 0x5A ? 0x20 : 0)) }
        w.append("\0")
        let noQuery = path.prefix { $0 != UInt8(ascii: "?") }
        if noQuery.isEmpty { w.append("/") } else { w.bytes.append(contentsOf: noQuery) }
        return hasher.hash(w.bytes)
    }

    /// The URI digest of a request's target.
    public func uriDigest(_ req: RequestHead, hasher: SHA1Hasher) -> Digest20 {
        let b = req.head.bytes
        return uriDigest(host: req.hostRange.map { b[$0] } ?? [], path: b[req.pathRange], hasher: hasher)
    }

    /// The key digest of a GET/HEAD request; `vary` adds the values of extra Vary-named fields.
    public func keyDigest(_ req: RequestHead, vary: [[UInt8]] = [], hasher: SHA1Hasher) -> Digest20 {
        let b = req.head.bytes
        var w = ByteWriter(capacity: 256)
        w.append("k\0")
        w.append(bytes: origin)
        w.append("\0GET\0")
        if let h = req.hostRange { for c in b[h] { w.bytes.append(c | (c >= 0x41 && c <= 0x5A ? 0x20 : 0)) } }
        w.append("\0")
        w.append(b, req.pathRange)
        for name in keyHeaders { appendField(&w, req.head, name) }
        if !vary.isEmpty {
            w.append("\0vary")
            for name in vary { appendField(&w, req.head, name) }
        }
        return hasher.hash(w.bytes)
    }

    private func appendField(_ w: inout ByteWriter, _ block: FieldBlock, _ name: [UInt8]) {
        w.append("\0")
        w.append(bytes: name)
        w.append(":")
        var first = true
        for f in block.fields where f.name.count == name.count {
            var same = true
            for (j, i) in f.name.enumerated() where block.bytes[i] | 0x20 != name[j] | 0x20 {
                same = false
                break
            }
            guard same else { continue }
            if !first { w.append(",") }
            w.append(block.bytes, f.value)
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

import EtagHTTP

/// Cache keys as digests (no header value ever leaves this function in clear).
///
/// - The *URI digest* names a resource for invalidation: upstream origin, Host, path without query. Every query
///   variant of a path shares it, so invalidating `/persons` also invalidates `/persons?page=2` (over-
///   invalidation is safe; RFC 9111 §4.4 asks for at least the target URI).
/// - The *key digest* names one representation: origin, method class (GET and HEAD share it), Host, path and
///   query, the values of the representation-selecting headers (`cache.key_headers`), and of the headers the
///   upstream's Vary names.
///
/// Both name the resource as the upstream receives it, so that two spellings of one resource share one entry, one
/// generation and one lease: the client's Host only when it is forwarded (`forwarding.preserve_host`), repeated
/// slashes as one, and a trailing slash ignored (`keys.ignore_trailing_slash`). Dot-segments never get here (the
/// parser refuses them).
public final class CacheKeyBuilder: Sendable {
    let origin: [UInt8]
    /// The `cache.key_headers` names, lowercased, one after another (`keyHeaderRanges` delimits them): one array
    /// to walk per key, not one per name to retain and release.
    private let keyHeaderNames: [UInt8]
    private let keyHeaderRanges: [Range<Int>]
    /// The client's Host is part of the keys (only when it is sent upstream).
    let includeHost: Bool
    /// `/a/` and `/a` are one resource.
    let ignoreTrailingSlash: Bool
    /// What every key's material starts with: a format mark and the first 8 bytes of SHA-1(origin). The origin
    /// comes from the config, not from clients, so a digest prefix separates upstreams as well as the whole
    /// string would — and keeps a typical request's key material inside one SHA-1 block.
    private let keyPrefix: [UInt8]
    /// The URI digest's two FNV-1a states after the origin (computed once).
    private let uriSeed: (UInt64, UInt64)

    /// At most this many `cache.key_headers` (each is named by a one-byte index in the key material).
    public static let maxKeyHeaders = 64

    public init(origin: String, keyHeaders: [String], includeHost: Bool = true, ignoreTrailingSlash: Bool = false) {
        precondition(keyHeaders.count <= Self.maxKeyHeaders, "at most \(Self.maxKeyHeaders) key headers")
        self.includeHost = includeHost
        self.ignoreTrailingSlash = ignoreTrailingSlash
        self.origin = Array(origin.utf8)
        var names: [UInt8] = []
        var ranges: [Range<Int>] = []
        for name in keyHeaders {
            let start = names.count
            names += Array(name.lowercased().utf8)
            ranges.append(start..<names.count)
        }
        keyHeaderNames = names
        keyHeaderRanges = ranges
        let originDigest = SHA1Hasher().hash(self.origin)
        keyPrefix = Array("k2".utf8) + withUnsafeBytes(of: originDigest.a) { Array($0) }
        var h1: UInt64 = 0xcbf2_9ce4_8422_2325
        var h2: UInt64 = 0x8422_2325_cbf2_9ce4
        for c in self.origin + [0] { Self.mix(c, &h1, &h2) }
        uriSeed = (h1, h2)
    }

    @inline(__always) private static func mix(_ c: UInt8, _ h1: inout UInt64, _ h2: inout UInt64) {
        h1 = (h1 ^ UInt64(c)) &* 0x0000_0100_0000_01B3
        h2 = (h2 ^ UInt64(c)) &* 0x0000_0100_0000_01B3 ^ (h2 >> 29)
    }

    /// The URI digest of `path` (query ignored) on `host`: two FNV-1a 64-bit hashes. It only indexes the
    /// generation counters and lease stripes, where a collision costs an extra invalidation or a shared lease,
    /// never a wrong answer — so it needs no cryptographic hash (the key digest, which does, is SHA-1).
    public func uriDigest(host: some Collection<UInt8>, path: [UInt8]) -> Digest20 {
        uriDigest(host: host, path: path[...])
    }

    public func uriDigest(host: some Collection<UInt8>, path: ArraySlice<UInt8>) -> Digest20 {
        var (h1, h2) = uriSeed
        if includeHost { for c in host { Self.mix(c | (c >= 0x41 && c <= 0x5A ? 0x20 : 0), &h1, &h2) } }
        Self.mix(0, &h1, &h2)
        var any = false
        _ = canonicalPath(path) { run in
            for c in run { Self.mix(c, &h1, &h2) }
            any = any || !run.isEmpty
        }
        if !any { Self.mix(UInt8(ascii: "/"), &h1, &h2) }
        return Digest20(a: h1, b: h2, c: UInt32(truncatingIfNeeded: (h1 >> 32) ^ h2))
    }

    /// The URI digest of a request's target.
    public func uriDigest(_ req: RequestHead) -> Digest20 {
        let b = req.head.bytes
        return uriDigest(host: req.hostRange.map { b[$0] } ?? b[0..<0], path: b[req.pathRange])
    }

    /// The path before `?` as the keys see it, handed to `emit` in runs (one run for a path with nothing to
    /// change, so the usual case costs one hash update): repeated slashes as one, a trailing slash dropped when
    /// `ignoreTrailingSlash` (but `/` stays `/`). Returns where the query starts (`path.endIndex` without one).
    func canonicalPath(_ path: ArraySlice<UInt8>, _ emit: (ArraySlice<UInt8>) -> Void) -> Int {
        let slash = UInt8(ascii: "/")
        let end = path.firstIndex(of: UInt8(ascii: "?")) ?? path.endIndex
        var runStart = path.startIndex
        var i = path.startIndex
        while i < end {
            guard path[i] == slash else {
                i += 1
                continue
            }
            var j = i + 1
            while j < end, path[j] == slash { j += 1 }
            if j == end && ignoreTrailingSlash && i > path.startIndex {
                emit(path[runStart..<i])  // the trailing slash (or slashes) dropped
                return end
            }
            if j > i + 1 {  // one slash kept of several
                emit(path[runStart..<(i + 1)])
                runStart = j
            }
            i = j
        }
        if runStart < end { emit(path[runStart..<end]) }
        return end
    }

    /// The key digest of a GET/HEAD request; `vary` adds the values of extra Vary-named fields; `path`
    /// replaces the target (the Location a POST created).
    ///
    /// The material is unambiguous because NUL occurs in no host, target or field value (the parser refuses it):
    /// prefix (fixed length) · host, lowercased · NUL · path and query (empty → "/") · for each key header that
    /// is present: NUL, its index (1…64), its values joined by commas · with Vary fields: NUL NUL "v", then for
    /// each: NUL, name, ":", values. GET and HEAD share the key (HEAD is answered from GET's representation).
    public func keyDigest(
        _ req: RequestHead, vary: [[UInt8]] = [], path: [UInt8]? = nil, hasher: SHA1Hasher
    ) -> Digest20 {
        withUnsafeTemporaryAllocation(byteCount: KeyMaterial.bufferSize, alignment: 16) { buffer in
            var m = KeyMaterial(hasher: hasher, buffer: buffer)
            let b = req.head.bytes
            keyPrefix.withUnsafeBytes { m.add($0) }
            b.withUnsafeBytes { bytes in
                if includeHost, let h = req.hostRange { m.addLowercased(UnsafeRawBufferPointer(rebasing: bytes[h])) }
            }
            m.add(byte: 0)
            let target = path.map { $0[...] } ?? b[req.pathRange]
            var any = false
            let query = canonicalPath(target) { run in
                run.withUnsafeBytes { m.add($0) }
                any = any || !run.isEmpty
            }
            if !any { m.add(byte: UInt8(ascii: "/")) }
            if query < target.endIndex { target[query...].withUnsafeBytes { m.add($0) } }
            req.head.bytes.withUnsafeBytes { bytes in
                keyHeaderNames.withUnsafeBytes { names in
                    for (i, r) in keyHeaderRanges.enumerated() {
                        addField(
                            &m, bytes, req.head.fields, UnsafeRawBufferPointer(rebasing: names[r]), mark: UInt8(i + 1))
                    }
                }
                if !vary.isEmpty {
                    m.add(byte: 0)
                    m.add(byte: 0)
                    m.add(byte: UInt8(ascii: "v"))
                    for name in vary {
                        name.withUnsafeBytes { addField(&m, bytes, req.head.fields, $0, mark: nil) }
                    }
                }
            }
            m.flush()
            return hasher.finish()
        }
    }

    /// Adds the values of every field line called `n` (lowercase), joined by commas: after NUL and `mark` (a key
    /// header's index; an absent key header adds nothing), or after NUL, the name and ":" (a Vary field).
    private func addField(
        _ m: inout KeyMaterial, _ b: UnsafeRawBufferPointer, _ fields: [HeaderField], _ n: UnsafeRawBufferPointer,
        mark: UInt8?
    ) {
        var first = true
        if mark == nil {
            m.add(byte: 0)
            m.add(n)
            m.add(byte: UInt8(ascii: ":"))
        }
        for f in fields where f.name.count == n.count {
            var same = true
            var j = 0
            for i in f.name {
                if Self.lower(b[i]) != Self.lower(n[j]) {
                    same = false
                    break
                }
                j += 1
            }
            guard same else { continue }
            if !first {
                m.add(byte: UInt8(ascii: ","))
            } else if let mark {
                m.add(byte: 0)
                m.add(byte: mark)
            }
            first = false
            m.add(UnsafeRawBufferPointer(rebasing: b[f.value]))
        }
    }

    @inline(__always) private static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

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
            guard rest[..<authEnd].lowercased() == String(decoding: host, as: UTF8.self).lowercased() else {
                return nil
            }
            let path = String(rest[authEnd...])
            return Array((path.isEmpty ? "/" : path).utf8)
        }
        return nil
    }
}

/// A key's material gathered in one buffer and hashed with one SHA-1 update when it fits (each update is a call
/// chain and a copy into SHA-1's block buffer, and a key has a dozen pieces); longer material is hashed in
/// buffer-sized pieces, which gives the same digest. The buffer is the caller's (on its stack).
struct KeyMaterial {
    static let bufferSize = 512
    let hasher: SHA1Hasher
    let buffer: UnsafeMutableRawBufferPointer
    private var count = 0

    init(hasher: SHA1Hasher, buffer: UnsafeMutableRawBufferPointer) {
        self.hasher = hasher
        self.buffer = buffer
    }

    mutating func add(_ p: UnsafeRawBufferPointer) {
        guard let from = p.baseAddress, p.count > 0 else { return }
        if p.count > buffer.count - count {
            flush()
            if p.count > buffer.count { return hasher.update(p) }
        }
        (buffer.baseAddress! + count).copyMemory(from: from, byteCount: p.count)
        count += p.count
    }

    mutating func add(byte: UInt8) {
        if count == buffer.count { flush() }
        buffer[count] = byte
        count += 1
    }

    /// Adds `p` with ASCII letters lowercased (a host name).
    mutating func addLowercased(_ p: UnsafeRawBufferPointer) {
        for c in p { add(byte: c >= 0x41 && c <= 0x5A ? c | 0x20 : c) }
    }

    /// Hashes what is gathered.
    mutating func flush() {
        guard count > 0 else { return }
        hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        count = 0
    }
}

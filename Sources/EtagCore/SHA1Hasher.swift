internal import COpenSSL

/// Streaming SHA-1 with OpenSSL EVP: the digest is fetched once and one context is reused (measured here:
/// `SHA1()` / `EVP_sha1()` per call is 1.4–3.5× slower on small bodies). One per worker thread; not Sendable.
/// The only place the proxy names its hash: a FIPS host that refuses SHA-1 changes this file alone.
///
/// Small updates (a cache key is hashed from a dozen short pieces) are gathered in a staging buffer and given to
/// OpenSSL in one call; large ones (body chunks) go straight through.
public final class SHA1Hasher {
    private let md: OpaquePointer
    private let ctx: OpaquePointer
    private static let stageCapacity = 256
    private let stage = UnsafeMutableRawPointer.allocate(byteCount: SHA1Hasher.stageCapacity, alignment: 16)
    private var staged = 0

    public init() {
        guard let md = EVP_MD_fetch(nil, "SHA1", nil), let ctx = EVP_MD_CTX_new() else {
            fatalError("OpenSSL has no SHA-1 (FIPS mode?)")
        }
        self.md = md
        self.ctx = ctx
        reset()
    }

    deinit {
        stage.deallocate()
        EVP_MD_CTX_free(ctx)
        EVP_MD_free(md)
    }

    public func reset() {
        staged = 0
        EVP_DigestInit_ex(ctx, md, nil)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        if staged + bytes.count <= Self.stageCapacity {
            (stage + staged).copyMemory(from: p, byteCount: bytes.count)
            staged += bytes.count
            return
        }
        flush()
        if bytes.count <= Self.stageCapacity / 2 {
            stage.copyMemory(from: p, byteCount: bytes.count)
            staged = bytes.count
        } else {
            EVP_DigestUpdate(ctx, p, bytes.count)
        }
    }

    private func flush() {
        if staged > 0 {
            EVP_DigestUpdate(ctx, stage, staged)
            staged = 0
        }
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 20-byte digest; the hasher is reset for the next message.
    public func finish() -> Digest20 {
        flush()
        var len: UInt32 = 20
        var out = Digest20(a: 0, b: 0, c: 0)
        var raw: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, no heap
        withUnsafeMutableBytes(of: &raw) { r in
            _ = EVP_DigestFinal_ex(ctx, r.baseAddress!.assumingMemoryBound(to: UInt8.self), &len)
            out = Digest20(UnsafeRawBufferPointer(r))
        }
        reset()
        return out
    }

    public func update(_ s: StaticString) {
        update(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// One-shot digest of `bytes`.
    public func hash(_ bytes: [UInt8]) -> Digest20 {
        update(bytes)
        return finish()
    }
}

/// A 20-byte digest, stored inline (no heap allocation).
public struct Digest20: Sendable, Equatable, Hashable {
    public var a: UInt64, b: UInt64, c: UInt32

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count >= 20)
        var a: UInt64 = 0, b: UInt64 = 0, c: UInt32 = 0
        withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: bytes[0..<8]) }
        withUnsafeMutableBytes(of: &b) { $0.copyBytes(from: bytes[8..<16]) }
        withUnsafeMutableBytes(of: &c) { $0.copyBytes(from: bytes[16..<20]) }
        self.a = a
        self.b = b
        self.c = c
    }

    /// From the first 20 bytes of `raw` (no allocation).
    public init(_ raw: UnsafeRawBufferPointer) {
        a = raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        b = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        c = raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
    }

    public init(a: UInt64, b: UInt64, c: UInt32) {
        self.a = a
        self.b = b
        self.c = c
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: a) { out.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: b) { out.replaceSubrange(8..<16, with: $0) }
        withUnsafeBytes(of: c) { out.replaceSubrange(16..<20, with: $0) }
        return out
    }

    /// Lowercase hex, 40 characters.
    public var hex: [UInt8] { Array(quotedETag[1..<41]) }

    /// The strong ETag the proxy emits: `"` + 40 lowercase hex + `"` (RFC 9110 §8.8.3).
    public var etag: EntityTag { EntityTag(opaque: hex) }

    /// The ETag field value bytes, quoted: one allocation.
    public var quotedETag: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 42) { out, n in
            write(quotedInto: UnsafeMutableRawBufferPointer(out))
            n = 42
        }
    }

    /// Overwrites `buffer` with the quoted ETag (42 bytes), reusing its memory when it is not shared — for the
    /// hot 304 path, which would otherwise allocate the tag for every answer.
    public func quotedETag(reusing buffer: inout [UInt8]) {
        if buffer.count != 42 { buffer = [UInt8](repeating: 0, count: 42) }
        buffer.withUnsafeMutableBytes { write(quotedInto: $0) }
    }

    private func write(quotedInto out: UnsafeMutableRawBufferPointer) {
        out[0] = 0x22
        var i = 1
        withUnsafeBytes(of: self) { raw in
            for k in 0..<20 {
                let byte = raw[k]
                out[i] = Self.hexDigit(byte >> 4)
                out[i + 1] = Self.hexDigit(byte & 0xF)
                i += 2
            }
        }
        out[41] = 0x22
    }

    @inline(__always) static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }
}

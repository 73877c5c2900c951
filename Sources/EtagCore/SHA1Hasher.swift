internal import COpenSSL

/// Streaming SHA-1 on OpenSSL's low-level functions and a context this object owns (COpenSSL's shim says why not
/// EVP: a reused EVP context re-allocates on every init). One per worker thread; not Sendable.
/// The only place the proxy names its hash: a FIPS host that refuses SHA-1 changes this file alone.
public final class SHA1Hasher {
    private let ctx = UnsafeMutablePointer<SHA_CTX>.allocate(capacity: 1)

    public init() {
        reset()
    }

    deinit {
        ctx.deallocate()
    }

    public func reset() {
        etag_sha1_init(ctx)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        etag_sha1_update(ctx, p, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 20-byte digest; the hasher is reset for the next message.
    public func finish() -> Digest20 {
        var out = Digest20(a: 0, b: 0, c: 0)
        var raw: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, no heap
        withUnsafeMutableBytes(of: &raw) { r in
            etag_sha1_final(ctx, r.baseAddress!.assumingMemoryBound(to: UInt8.self))
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

    /// One-shot digest of `bytes`.
    public func hash(_ bytes: UnsafeRawBufferPointer) -> Digest20 {
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

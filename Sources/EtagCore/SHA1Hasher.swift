internal import COpenSSL

/// Streaming SHA-1 with OpenSSL EVP: the digest is fetched once and one context is reused (measured here:
/// `SHA1()` / `EVP_sha1()` per call is 1.4–3.5× slower on small bodies). One per worker thread; not Sendable.
/// The only place the proxy names its hash: a FIPS host that refuses SHA-1 changes this file alone.
public final class SHA1Hasher {
    private let md: OpaquePointer
    private let ctx: OpaquePointer
    private var digest = [UInt8](repeating: 0, count: 20)

    public init() {
        guard let md = EVP_MD_fetch(nil, "SHA1", nil), let ctx = EVP_MD_CTX_new() else {
            fatalError("OpenSSL has no SHA-1 (FIPS mode?)")
        }
        self.md = md
        self.ctx = ctx
        reset()
    }

    deinit {
        EVP_MD_CTX_free(ctx)
        EVP_MD_free(md)
    }

    public func reset() {
        EVP_DigestInit_ex(ctx, md, nil)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 20-byte digest; the hasher is reset for the next message.
    public func finish() -> Digest20 {
        var len: UInt32 = 20
        digest.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(ctx, $0.baseAddress, &len) }
        reset()
        return Digest20(digest)
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
    public var hex: [UInt8] {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(40)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return out
    }

    /// The strong ETag the proxy emits: `"` + 40 lowercase hex + `"` (RFC 9110 §8.8.3).
    public var etag: EntityTag { EntityTag(opaque: hex) }

    /// The ETag field value bytes, quoted.
    public var quotedETag: [UInt8] { [0x22] + hex + [0x22] }
}

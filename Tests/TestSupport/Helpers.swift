import Foundation

/// A value shared between a test and its upstream handler.
public final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    public init(_ v: T) { value = v }
    public var get: T { lock.withLock { value } }
    public func set(_ v: T) { lock.withLock { value = v } }
    /// Read-modify-write under the lock.
    public func update(_ change: (inout T) -> Void) { lock.withLock { change(&value) } }
}

/// `"` + SHA-1 hex of `body` + `"`, from the small SHA-1 below (independent of the proxy's OpenSSL code).
public func expectedETag(_ body: [UInt8]) throws -> String {
    "\"" + TestSHA1.hex(body) + "\""
}

/// FIPS 180-4 SHA-1, written plainly for tests.
public enum TestSHA1 {
    public static func hex(_ message: [UInt8]) -> String {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var m = message
        let bitLength = UInt64(message.count) * 8
        m.append(0x80)
        while m.count % 64 != 56 { m.append(0) }
        for i in (0..<8).reversed() { m.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: m.count, by: 64) {
            for i in 0..<16 {
                w[i] = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(m[chunk + i * 4 + $1]) }
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = x << 1 | x >> 31
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32)
                switch i {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                }
                let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, b << 30 | b >> 2, a, t)
            }
            h[0] = h[0] &+ a
            h[1] = h[1] &+ b
            h[2] = h[2] &+ c
            h[3] = h[3] &+ d
            h[4] = h[4] &+ e
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }
}

/// Foundation's `Process` is not safe to launch from several threads at once the first time (its run-loop
/// setup races); tests launch every process under this lock.
public let processLaunchLock = NSLock()

/// A unique shared-memory region name for one test.
public func uniqueRegionName() -> String { "/etag-proxy-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

import Foundation

/// A value shared between a test and its upstream handler.
public final class Shared<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    public init(_ v: T) { value = v }
    public var get: T { lock.withLock { value } }
    public func set(_ v: T) { lock.withLock { value = v } }
}

/// `"` + SHA-1 hex of `body` + `"`, computed by sha1sum (independent of the proxy's OpenSSL code).
public func expectedETag(_ body: [UInt8]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha1sum")
    let input = Pipe()
    let output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    try p.run()
    input.fileHandleForWriting.write(Data(body))
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return "\"" + String(decoding: out, as: UTF8.self).prefix(40) + "\""
}

/// A unique shared-memory region name for one test.
public func uniqueRegionName() -> String { "/etag-proxy-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

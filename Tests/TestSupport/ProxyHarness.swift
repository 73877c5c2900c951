import EtagCache
import EtagCore
import EtagServer
import Foundation

/// An etag-proxy `Server` running in the test process on an ephemeral port, in front of `upstream`.
public final class ProxyHarness: @unchecked Sendable {
    public let server: Server
    public let upstream: TestUpstream
    public var port: Int { server.port }
    public let regionName: String
    /// Whether the harness removes the region's name when it stops.
    public var unlinkRegion = true

    /// - Parameter configure: changes to the test defaults (2 workers, no access log).
    public init(upstream: TestUpstream, configure: (inout ProxyConfig) -> Void = { _ in }) throws {
        var c = ProxyConfig()
        c.listen = ListenAddress(host: "127.0.0.1", port: 0)
        c.upstream = UpstreamURL(host: "127.0.0.1", port: upstream.port)
        c.workers = 2
        c.accessLog = .off
        c.timeouts.shutdownGrace = 2000
        c.cache.name = uniqueRegionName()
        c.cache.size = 1 << 20
        c.admin.listen = ListenAddress(host: "127.0.0.1", port: 0)
        configure(&c)
        regionName = c.cache.name!
        self.upstream = upstream
        server = Server(config: c)
        try server.start()
    }

    private var stopped = false

    /// Stops the proxy and the upstream (idempotent).
    public func stop() {
        guard !stopped else { return }
        stopped = true
        server.stop()
        server.wait()
        upstream.stop()
        if unlinkRegion { SharedCache.unlink(name: regionName) }
    }

    /// A new raw connection to the proxy.
    public func connect(timeout: Double = 10) throws -> RawClient {
        try RawClient(port: port, timeout: timeout)
    }

    /// Sends one request on a new connection and reads the response.
    public func request(_ raw: String, head: Bool = false) throws -> HTTPMessage {
        let c = try connect()
        defer { c.close() }
        c.send(raw)
        guard let r = c.reader.readResponse(head: head) else { throw TestError("no response to \(raw.prefix(40))") }
        return r
    }
}

/// A raw-socket HTTP client.
public final class RawClient {
    public let fd: Int32
    public let reader: SocketReader

    public init(port: Int, timeout: Double = 10, receiveBuffer: Int32? = nil) throws {
        fd = try Sockets.connect(port: port, timeout: timeout, receiveBuffer: receiveBuffer)
        reader = SocketReader(fd: fd)
    }

    public func send(_ s: String) { Sockets.sendAll(fd, Array(s.utf8)) }
    public func send(_ b: [UInt8]) { Sockets.sendAll(fd, b) }

    public func response(head: Bool = false) -> HTTPMessage? { reader.readResponse(head: head) }

    /// True when the proxy has closed the connection (EOF within the timeout).
    public func isClosedByPeer() -> Bool {
        !reader.fill() && reader.closed
    }

    public func close() { Glibc.close(fd) }

    /// Closes with SO_LINGER 0: the peer gets a TCP reset instead of a FIN.
    public func reset() {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(fd)
    }
}

/// Runs curl and returns its exit status, stdout and stderr.
public func runCurl(_ args: [String], timeout: Double = 20) throws -> (status: Int32, out: String, err: String) {
    try runProcess("/usr/bin/curl", ["-sS", "--max-time", "\(Int(timeout))"] + args)
}

public func runProcess(
    _ path: String, _ args: [String], environment: [String: String]? = nil
)
    throws -> (status: Int32, out: String, err: String)
{
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try processLaunchLock.withLock { try p.run() }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

import EtagCache
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The built `etag-proxy` executable, next to the test bundle.
func proxyBinary() throws -> String {
    if let p = ProcessInfo.processInfo.environment["ETAG_PROXY_BIN"] { return p }
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("etag-proxy").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    throw TestError("etag-proxy binary not found near \(exe); run `swift build` first")
}

/// A free loopback port for a proxy process, outside the kernel's ephemeral range (32768–60999 here), and
/// never the same twice in one test run: in-process servers bind port 0 (an ephemeral port), and two
/// SO_REUSEPORT listeners of one user may share a port, so a port handed out here must never be one a parallel
/// test could get from the kernel.
func freePort() throws -> Int {
    while true {
        let port = nextPort.update { $0 += 1 } - 1
        guard port < 32000 else { throw TestError("out of test ports") }
        if let (fd, _) = try? Sockets.listen(port: port) {
            close(fd)
            return port
        }
    }
}

private let nextPort = Counter(Int.random(in: 20000..<24000))

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(_ v: Int) { value = v }
    /// Applies `change` and returns the new value.
    func update(_ change: (inout Int) -> Void) -> Int {
        lock.withLock {
            change(&value); return value
        }
    }
}

/// An etag-proxy process started with a config file; stopped by PID.
final class ProxyProcess {
    let process = Process()
    let port: Int
    let stderrPipe = Pipe()

    let stdoutPipe = Pipe()
    /// The config file the process was started with (a test may rewrite it and send SIGHUP).
    let configFile: URL

    /// - Parameter captureStdout: keep what the process writes to stdout (the access log) for `stdoutText`.
    init(yaml: String, port: Int, extraArgs: [String] = [], captureStdout: Bool = false) throws {
        self.port = port
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("etag-\(UUID().uuidString).yaml")
        configFile = file
        // The admin listener on an ephemeral port unless the test chose one (parallel proxies never collide).
        let yaml = yaml.contains("admin:") ? yaml : yaml + "\nadmin:\n  listen: 127.0.0.1:0\n"
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: try proxyBinary())
        process.arguments = ["--config", file.path] + extraArgs
        process.standardError = stderrPipe
        process.standardOutput = captureStdout ? stdoutPipe : FileHandle.nullDevice
        try processLaunchLock.withLock { try process.run() }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let fd = try? Sockets.connect(port: port) {
                close(fd)
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.terminate()
        throw TestError("etag-proxy did not start")
    }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    /// Waits for exit (bounded); returns the exit status. Removes the region a derived cache name made.
    func waitForExit(timeout: Double = 15) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            while process.isRunning { Thread.sleep(forTimeInterval: 0.05) }
            SharedCache.unlink(name: "/etag-proxy-127.0.0.1-\(port)")
            return nil
        }
        SharedCache.unlink(name: "/etag-proxy-127.0.0.1-\(port)")
        return process.terminationStatus
    }

    /// Everything the process wrote to stdout (call after it exited, with `captureStdout`).
    var stdoutText: String { String(decoding: stdoutPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }

    /// Everything the process wrote to stderr (call after it exited).
    var stderrText: String { String(decoding: stderrPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
}

/// Two etag-proxy processes in front of one upstream, sharing one cache region (`a` and `b`).
final class ProcessPair {
    let a: ProxyProcess
    let b: ProxyProcess
    let region = uniqueRegionName()

    init(upstreamPort: Int, workers: Int = 2, extraYAML: String = "") throws {
        let (pa, pb) = (try freePort(), try freePort())
        let region = self.region
        func yaml(_ port: Int) -> String {
            "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(upstreamPort)\nworkers: \(workers)\naccess_log: off\n"
                + "cache:\n  name: \(region.dropFirst())\n  size: 1MiB\n" + extraYAML
        }
        a = try ProxyProcess(yaml: yaml(pa), port: pa)
        b = try ProxyProcess(yaml: yaml(pb), port: pb)
    }

    /// Stops both (by PID) and removes the region's name.
    func stop() {
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        _ = a.waitForExit()
        _ = b.waitForExit()
        SharedCache.unlink(name: region)
    }
}

@Suite("Lifecycle: start-up line, graceful shutdown with a request in flight", .serialized)
struct ShutdownTests {
    @Test func sigtermLetsTheInFlightRequestFinishAndExitsZero() throws {
        let up = try TestUpstream { req in .delay(0.8, TestUpstream.echo(req)) }
        defer { up.stop() }
        let port = try freePort()
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\nworkers: 2\naccess_log: off\n"
                + "timeouts:\n  shutdown_grace: 5s\n", port: port)
        let c = try RawClient(port: port)
        defer { c.close() }
        c.send("GET /inflight HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.2)
        proxy.signal(SIGTERM)
        Thread.sleep(forTimeInterval: 0.2)
        #expect((try? Sockets.connect(port: port)) == nil, "no longer accepting")
        let r = try #require(c.response())
        #expect(r.status == 200)
        #expect(r.bodyText.contains("/inflight"))
        #expect(r.header("Connection") == "close")
        #expect(proxy.waitForExit() == 0)
        #expect(proxy.stderrText.contains("listening on 127.0.0.1:\(port)"))
    }

    @Test func graceExpiryClosesStuckExchanges() throws {
        let up = try TestUpstream { req in .delay(10, TestUpstream.echo(req)) }
        defer { up.stop() }
        let port = try freePort()
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\nworkers: 1\naccess_log: off\n"
                + "timeouts:\n  shutdown_grace: 300ms\n", port: port)
        let c = try RawClient(port: port)
        defer { c.close() }
        c.send("GET /stuck HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        proxy.signal(SIGINT)
        #expect(proxy.waitForExit() == 0)
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func accessLogLineIsWrittenPerRequest() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = try freePort()
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\nworkers: 1\naccess_log: stderr\n",
            port: port)
        _ = try runCurl(["http://127.0.0.1:\(port)/logged?x=1"])
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        let log = proxy.stderrText
        #expect(log.contains("\"GET /logged?x=1 HTTP/1.1\" 200"))
    }
}

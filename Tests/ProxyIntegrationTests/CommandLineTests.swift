import Foundation
import Testing
import TestSupport

@Suite("Command line: --check-config, flag overrides, config errors", .serialized)
struct CommandLineTests {
    func writeConfig(_ yaml: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("etag-cli-\(UUID().uuidString).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test func checkConfigAcceptsTheShippedFile() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let r = try runProcess(
            try proxyBinary(),
            ["--config", root.appendingPathComponent("config/etag-proxy.yaml").path, "--check-config"])
        #expect(r.status == 0)
        #expect(r.err.contains("configuration OK"))
    }

    @Test func aBadFileNamesTheKeyAndLineAndExitsNonZero() throws {
        let path = try writeConfig("listen: 127.0.0.1:8080\ntimeouts:\n  upstream: soon\n")
        let r = try runProcess(try proxyBinary(), ["--config", path, "--check-config"])
        #expect(r.status == 2)
        #expect(r.err.contains("\(path):3: timeouts.upstream"))
        let unknown = try runProcess(try proxyBinary(), ["--config", try writeConfig("cache:\n  tll: 5s\n")])
        #expect(unknown.status == 2)
        #expect(unknown.err.contains("cache.tll"))
    }

    @Test func checkConfigReadsTheCertificates() throws {
        let path = try writeConfig("tls:\n  cert: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\n")
        let r = try runProcess(try proxyBinary(), ["--config", path, "--check-config"])
        #expect(r.status == 2)
        #expect(r.err.contains("tls.cert: cannot read /nonexistent/cert.pem: No such file or directory"), "\(r.err)")
        // And at start: the same words, a non-zero exit, nothing listening.
        let start = try runProcess(try proxyBinary(), ["--config", path, "--listen", "127.0.0.1:0"])
        #expect(start.status != 0)
        #expect(start.err.contains("tls.cert: cannot read"), "\(start.err)")
    }

    @Test func aBadEnvironmentVariableIsNamed() throws {
        var env = ProcessInfo.processInfo.environment
        env["ETAG_PROXY_WORKERS"] = "lots"
        let r = try runProcess(try proxyBinary(), ["--check-config"], environment: env)
        #expect(r.status == 2)
        #expect(r.err.contains("ETAG_PROXY_WORKERS"))
    }

    @Test func listenAndUpstreamFlagsOverrideTheFile() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = try freePort()
        // The file points at ports where nothing listens; the flags win.
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:1\nupstream: http://127.0.0.1:1\naccess_log: off\nworkers: 1\n", port: port,
            extraArgs: ["--listen", "127.0.0.1:\(port)", "--upstream", "http://127.0.0.1:\(up.port)"])
        let r = try runCurl(["-i", "http://127.0.0.1:\(port)/flag"])
        #expect(r.out.hasPrefix("HTTP/1.1 200"))
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        #expect(proxy.stderrText.contains("upstream http://127.0.0.1:\(up.port)"))
    }

    @Test func aPortInUseIsAClearStartupError() throws {
        let (fd, port) = try Sockets.listen()
        defer { close(fd) }
        let r = try runProcess(try proxyBinary(), ["--listen", "127.0.0.1:\(port)"])
        #expect(r.status == 1)
        #expect(r.err.contains("cannot listen on 127.0.0.1:\(port)"))
    }

    /// A shared region made in advance and left writable by others is refused at start, with a clear error.
    @Test func aForeignRegionIsAClearStartupError() throws {
        let name = String(uniqueRegionName().dropFirst())
        let path = "/dev/shm/" + name
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: 16 * 1024 * 1024)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(chmod(path, 0o666) == 0)
        let up = try TestUpstream()
        defer { up.stop() }
        let config = try writeConfig(
            "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:\(up.port)\ncache:\n  name: \(name)\n")
        let r = try runProcess(try proxyBinary(), ["--config", config])
        #expect(r.status != 0)
        #expect(r.err.contains("refused"), "\(r.err)")
    }
}

import EtagCore
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What an operator runs into: the JSON access log, request ids, SIGHUP reload, the CLI's checks and the health
/// subcommand — real processes, real sockets.
@Suite("Operations: JSON access log, request ids, SIGHUP reload, CLI, health", .serialized)
struct OperationsTests {
    func writeConfig(_ yaml: String, to file: URL? = nil) throws -> URL {
        let f =
            file ?? FileManager.default.temporaryDirectory.appendingPathComponent("etag-ops-\(UUID().uuidString).yaml")
        try yaml.write(to: f, atomically: true, encoding: .utf8)
        return f
    }

    @Test func theJSONAccessLogIsOneObjectPerLine() throws {
        let store = RecordingStore(["/persons/1": "{\"name\":\"Ada\"}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let port = try freePort()
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\nworkers: 1\n"
                + "access_log:\n  target: stdout\n  format: json\n", port: port, captureStdout: true)
        let c = try RawClient(port: port)
        c.send("GET /persons/1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: trace-42\r\n\r\n")
        let tag = try #require(c.response()?.header("ETag"))
        c.send("GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(c.response()?.status == 304)
        let body = "{\"name\":\"Bob\"}"
        c.send(
            "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \"0000000000000000000000000000000000000000\"\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let r412 = try #require(c.response())
        #expect(r412.status == 412)
        c.send("GET /a\"b\\c HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(c.response()?.status == 404)
        c.send("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n")
        #expect(c.response()?.status == 400)
        c.close()
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        let lines = proxy.stdoutText.split(separator: "\n")
        #expect(lines.count == 5, "\(lines)")
        var objects: [[String: Any]] = []
        for line in lines {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            objects.append(try #require(o, "not a JSON object: \(line)"))
        }
        guard objects.count == 5 else { return }
        let time = try #require(objects[0]["time"] as? String)
        #expect(
            time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil, "\(time)")
        for o in objects {
            for key in [
                "time", "client", "method", "target", "protocol", "status", "bytes", "duration_ms", "upstream_status",
                "upstream_ms", "cache", "write_check", "request_id",
            ] {
                #expect(o.keys.contains(key), "\(key) missing in \(o)")
            }
        }
        #expect(objects[0]["request_id"] as? String == "trace-42")
        #expect(objects[0]["status"] as? Int == 200)
        #expect(objects[0]["upstream_status"] as? Int == 200)
        #expect((objects[0]["cache"] as? String)?.hasPrefix("etag-proxy; fwd=miss") == true)
        #expect(objects[0]["write_check"] as? String == "-")
        #expect(objects[1]["status"] as? Int == 304)
        #expect(objects[1]["cache"] as? String == "etag-proxy; hit")
        #expect(objects[1]["upstream_status"] is NSNull)
        #expect((objects[1]["request_id"] as? String)?.count == 32)
        #expect(objects[2]["status"] as? Int == 412)
        #expect(objects[2]["method"] as? String == "PUT")
        #expect(objects[2]["bytes"] as? Int == r412.body.count, "the proxy's own answers count their bytes")
        #expect(objects[2]["write_check"] as? String == "precondition_failed")
        #expect(objects[3]["target"] as? String == "/a\"b\\c", "escaped so that the line stays JSON")
        #expect(objects[4]["status"] as? Int == 400)
        #expect(objects[4]["method"] as? String == "-")
    }

    @Test func requestIdsAreKeptOrMadeSentUpstreamAndReturned() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let kept = try proxy.request("GET /k HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n")
        #expect(kept.header("X-Request-Id") == "abc-123")
        #expect(up.requests.last?.all("X-Request-Id") == ["abc-123"])
        let made = try proxy.request("GET /m HTTP/1.1\r\nHost: a\r\n\r\n")
        let id = try #require(made.header("X-Request-Id"))
        #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
        #expect(up.requests.last?.all("X-Request-Id") == [id])
        // Too long, or not visible ASCII: replaced, never forwarded.
        let long = String(repeating: "x", count: 129)
        let replaced = try proxy.request("GET /r HTTP/1.1\r\nHost: a\r\nX-Request-Id: \(long)\r\n\r\n")
        #expect(replaced.header("X-Request-Id")?.count == 32)
        #expect(up.requests.last?.all("X-Request-Id") == [replaced.header("X-Request-Id")!])
        let spaced = try proxy.request("GET /s HTTP/1.1\r\nHost: a\r\nX-Request-Id: a b\r\n\r\n")
        #expect(spaced.header("X-Request-Id")?.count == 32)
        // The proxy's own answers carry it too.
        let bad = try proxy.request(
            "GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: e-1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        #expect(bad.status == 400)
        #expect(bad.header("X-Request-Id")?.count == 32, "an unparsed request gets a new id")
    }

    @Test func sighupReloadsUnderLoadWithoutAFailedRequest() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = try freePort()
        let base =
            "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\nworkers: 2\naccess_log: off\n"
            + "admin:\n  listen: 127.0.0.1:0\n"
        let proxy = try ProxyProcess(yaml: base, port: port)
        let file = proxy.configFile
        let failures = Shared(0)
        let done = Shared(false)
        let sent = Shared(0)
        let load = Thread {
            while !done.get {
                guard let c = try? RawClient(port: port) else {
                    failures.update { $0 += 1 }
                    continue
                }
                for i in 0..<5 {
                    c.send("GET /load/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
                    if c.response()?.status != 200 { failures.update { $0 += 1 } }
                    sent.update { $0 += 1 }
                }
                c.close()
            }
        }
        load.start()
        Thread.sleep(forTimeInterval: 0.3)
        _ = try writeConfig(base + "forwarding:\n  via: reloaded\ncache:\n  ttl: 5s\n", to: file)
        proxy.signal(SIGHUP)
        var via = ""
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, via != "1.1 reloaded" {
            via =
                (try? runCurl(["-sI", "http://127.0.0.1:\(port)/v"]).out)?
                .split(separator: "\r\n").first { $0.hasPrefix("Via: ") }.map { String($0.dropFirst(5)) } ?? ""
        }
        #expect(via == "1.1 reloaded")
        // A broken file: the running config stays.
        _ = try writeConfig(base + "timeouts:\n  upstream: soon\n", to: file)
        proxy.signal(SIGHUP)
        Thread.sleep(forTimeInterval: 0.3)
        done.set(true)
        while load.isExecuting { Thread.sleep(forTimeInterval: 0.02) }
        let after = try runCurl(["-si", "http://127.0.0.1:\(port)/after"])
        #expect(after.out.contains("Via: 1.1 reloaded"), "the last good config still serves")
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        #expect(failures.get == 0)
        #expect(sent.get > 50)
        let log = proxy.stderrText
        #expect(
            log.contains("reloaded \(file.path): changed forwarding.via etag-proxy -> reloaded, cache.ttl 30s -> 5s"),
            "\(log)")
        #expect(log.contains("reload failed, keeping the running config: \(file.path):8: timeouts.upstream"), "\(log)")
    }

    @Test func keysThatNeedARestartAreReportedAsNotApplied() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = try freePort()
        let base =
            "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\naccess_log: off\n"
            + "admin:\n  listen: 127.0.0.1:0\n"
        let proxy = try ProxyProcess(yaml: base + "workers: 1\n", port: port)
        let file = proxy.configFile
        _ = try writeConfig(base + "workers: 3\n", to: file)
        proxy.signal(SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try runCurl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/"]).out == "200")
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        #expect(proxy.stderrText.contains("nothing changed; not applied (restart needed): workers 3"))
    }

    @Test func aMisspeltEnvironmentVariableIsAnErrorWithASuggestion() throws {
        var env = ProcessInfo.processInfo.environment
        env["ETAG_PROXY_TIMEOUT_UPSTREAM"] = "5s"
        let r = try runProcess(try proxyBinary(), ["--check-config"], environment: env)
        #expect(r.status == 2)
        #expect(
            r.err.contains("ETAG_PROXY_TIMEOUT_UPSTREAM: unknown variable (did you mean ETAG_PROXY_TIMEOUTS_UPSTREAM?)")
        )
        env["ETAG_PROXY_TIMEOUT_UPSTREAM"] = nil
        env["ETAG_PROXY_ACCESS_LOG"] = "off"  // the short name of access_log.target
        #expect(try runProcess(try proxyBinary(), ["--check-config"], environment: env).status == 0)
    }

    @Test func printConfigNamesWhereEachValueCameFrom() throws {
        let file = try writeConfig("listen: 127.0.0.1:7000\ncache:\n  ttl: 9s\n")
        var env = ProcessInfo.processInfo.environment
        env["ETAG_PROXY_CACHE_TTL"] = "5s"
        let r = try runProcess(
            try proxyBinary(), ["--config", file.path, "--print-config", "--workers", "3"], environment: env)
        #expect(r.status == 0)
        let lines = Set(r.out.split(separator: "\n").map(String.init))
        #expect(lines.contains("listen: 127.0.0.1:7000  # \(file.path):1"))
        #expect(lines.contains("cache.ttl: 5s  # environment ETAG_PROXY_CACHE_TTL"))
        #expect(lines.contains("workers: 3  # flag --workers"))
        #expect(lines.contains("etag.max_body: 8MiB  # default"))
        let v = try runProcess(try proxyBinary(), ["--version"])
        #expect(v.out.trimmingCharacters(in: .whitespacesAndNewlines) == EtagProxyVersion.string)
        let help = try runProcess(try proxyBinary(), ["--help"])
        #expect(help.out.contains("ETAG_PROXY_"))
    }

    @Test func theHealthSubcommandAsksTheAdminListener() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let (port, admin) = (try freePort(), try freePort())
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\naccess_log: off\n"
                + "admin:\n  listen: 0.0.0.0:\(admin)\n", port: port)
        let file = proxy.configFile
        #expect(try runProcess(try proxyBinary(), ["health", "--config", file.path]).status == 0)
        #expect(try runProcess(try proxyBinary(), ["health", "--admin", "127.0.0.1:\(admin)"]).status == 0)
        #expect(
            try runProcess(try proxyBinary(), ["health", "--admin", "127.0.0.1:\(admin)", "--path", "/nope"]).status
                == 1)
        let startLine = { proxy.stderrText }
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        let s = startLine()
        #expect(s.contains("etag-proxy \(EtagProxyVersion.string): listening on 127.0.0.1:\(port)"), "\(s)")
        #expect(s.contains("admin 0.0.0.0:\(admin)"))
        #expect(s.contains("cache.ttl 30s"))
        #expect(s.contains("io_uring "))
        let down = try runProcess(try proxyBinary(), ["health", "--admin", "127.0.0.1:\(admin)", "--timeout", "1"])
        #expect(down.status == 1)
        #expect(down.err.contains("no answer"))
    }

    @Test func aSecondInstanceOnTheSamePortIsRefused() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = try freePort()
        let yaml = "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\naccess_log: off\n"
        let first = try ProxyProcess(yaml: yaml, port: port)
        defer {
            first.signal(SIGTERM)
            _ = first.waitForExit()
        }
        let file = try writeConfig(yaml + "admin:\n  listen: 127.0.0.1:0\n")
        let second = try runProcess(try proxyBinary(), ["--config", file.path])
        #expect(second.status == 1)
        #expect(second.err.contains("another process already listens there"), "\(second.err)")
        #expect(second.err.contains("--takeover"))
    }

    /// The documented zero-downtime upgrade: start the new process with --takeover, SIGTERM the old one (it
    /// drains) — no request fails meanwhile.
    @Test func takeoverThenSigtermTheOldOneLosesNoRequest() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = try freePort()
        let yaml = "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\naccess_log: off\nworkers: 2\n"
        let old = try ProxyProcess(yaml: yaml, port: port)
        let failures = Shared(0)
        let sent = Shared(0)
        let done = Shared(false)
        let load = Thread {
            while !done.get {
                guard let c = try? RawClient(port: port, timeout: 5) else {
                    failures.update { $0 += 1 }
                    continue
                }
                c.send("GET /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                if c.response()?.status != 200 { failures.update { $0 += 1 } }
                sent.update { $0 += 1 }
                c.close()
            }
        }
        load.start()
        Thread.sleep(forTimeInterval: 0.3)
        let new = try ProxyProcess(yaml: yaml, port: port, extraArgs: ["--takeover"])
        Thread.sleep(forTimeInterval: 0.3)
        old.signal(SIGTERM)
        #expect(old.waitForExit() == 0)
        Thread.sleep(forTimeInterval: 0.3)
        done.set(true)
        while load.isExecuting { Thread.sleep(forTimeInterval: 0.02) }
        new.signal(SIGTERM)
        #expect(new.waitForExit() == 0)
        // Linux resets the connections still queued on a listener that closes, unless net.ipv4.tcp_migrate_req
        // is 1 (Linux >= 5.14), which hands them to another listener of the port: then nothing may fail (CI sets
        // it); without it, the microseconds between a draining worker's last accept and its close may cost a
        // connection or two, as with any SO_REUSEPORT handover (README, "One instance per port").
        let migrates =
            (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_migrate_req", encoding: .utf8))?
            .hasPrefix("1") == true
        #expect(
            failures.get <= (migrates ? 0 : 2), "\(failures.get) of \(sent.get) failed (tcp_migrate_req \(migrates))")
        #expect(sent.get > 50)
    }

    /// Nobody reads the proxy's stdout: requests are served as fast as ever, the lines that do not fit are
    /// dropped and counted, and the process still exits on SIGTERM.
    @Test func aStalledLogOutputNeverBlocksAWorker() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let (port, admin) = (try freePort(), try freePort())
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(up.port)\nworkers: 1\n"
                + "access_log:\n  target: stdout\n  format: json\n  buffer: 4KiB\nadmin:\n  listen: 127.0.0.1:\(admin)\n",
            port: port, captureStdout: true)
        let c = try RawClient(port: port)
        let target = "/" + String(repeating: "p", count: 1000)
        let started = Date()
        for _ in 0..<400 {  // ~ 0.5 MB of log lines: far more than the pipe and the buffer hold
            c.send("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(c.response()?.status == 200)
        }
        c.close()
        #expect(Date().timeIntervalSince(started) < 20)
        let m = try PrometheusScrape(text: try runCurl(["-s", "http://127.0.0.1:\(admin)/metrics"]).out)
        #expect((m.value("etag_proxy_access_log_dropped_total") ?? 0) > 0)
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit(timeout: 10) == 0, "the exit does not wait for a stalled log output")
    }
}

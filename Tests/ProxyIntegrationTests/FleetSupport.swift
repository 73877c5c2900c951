import EtagCache
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` (Debian's, installed by scripts/install-deps) on a free loopback port, no persistence;
/// stopped by PID. `restart` starts it again on the same port (a Redis outage and its recovery).
final class RedisProcess {
    let port: Int
    let password: String?
    private var process: Process?

    init(port: Int? = nil, password: String? = nil) throws {
        self.port = try port ?? freePort()
        self.password = password
        try start()
    }

    static var binary: String {
        for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        where FileManager.default.isExecutableFile(
            atPath: p)
        {
            return p
        }
        return "redis-server"
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var args = [
            Self.binary, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", "",
        ]
        if let pw = password { args += ["--requirepass", pw] }
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try processLaunchLock.withLock { try p.run() }
        process = p
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let fd = try? Sockets.connect(port: port) {
                close(fd)
                return
            }
            if !p.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestError("redis-server did not start on port \(port) (is it installed? scripts/install-deps)")
    }

    /// Kills it (SIGKILL: an outage, not a shutdown) and waits for the exit.
    func kill() {
        guard let p = process else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// The test process's threads block SIGTERM, and a child inherits the mask, so redis-server would never see
    /// it: it is stopped like `kill` (it keeps nothing on disk).
    func stop() { kill() }

    /// One command in RESP, its reply's first line (tests inspect keys with it).
    func command(_ args: [String]) throws -> String {
        let fd = try Sockets.connect(port: port)
        defer { close(fd) }
        var out = ""
        if let pw = password { out += "*2\r\n$4\r\nAUTH\r\n$\(pw.utf8.count)\r\n\(pw)\r\n" }
        out += "*\(args.count)\r\n" + args.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
        _ = Sockets.sendAll(fd, Array(out.utf8))
        let reader = SocketReader(fd: fd)
        if password != nil { _ = reader.readLine() }
        guard let line = reader.readLine() else { throw TestError("no reply from redis") }
        return String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits (at most a second) until `command(args)` answers `reply`; returns the last answer.
    func eventually(_ args: [String], _ reply: String) throws -> String {
        let deadline = Date().addingTimeInterval(1)
        var last = try command(args)
        while last != reply && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
            last = try command(args)
        }
        return last
    }
}

/// Replicas of one fleet: etag-proxy processes with different `cache.name` (they share no memory, as on
/// different hosts) in front of one upstream, sharing one Redis. Each has its own admin port.
final class Fleet {
    let replicas: [ProxyProcess]
    let adminPorts: [Int]
    let regions: [String]

    init(
        count: Int, upstreamPort: Int, redisPort: Int, workers: Int = 2, onRedisDown: String = "fail_closed",
        password: String? = nil, extraYAML: String = "", expectSubscribed: Bool = true
    ) throws {
        var replicas: [ProxyProcess] = []
        var admins: [Int] = []
        var regions: [String] = []
        let fleetName = "fleet-\(UInt32.random(in: 0...UInt32.max))"
        for _ in 0..<count {
            let (port, admin) = (try freePort(), try freePort())
            let region = uniqueRegionName()
            let yaml =
                "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(upstreamPort)\nworkers: \(workers)\n"
                + "access_log: off\ncache:\n  name: \(region.dropFirst())\n  size: 1MiB\n"
                + "admin:\n  listen: 127.0.0.1:\(admin)\n"
                + "fleet:\n  redis: redis://127.0.0.1:\(redisPort)\n  name: \(fleetName)\n  on_redis_down: \(onRedisDown)\n"
                + (password.map { "  redis_password: \($0)\n" } ?? "") + extraYAML
            replicas.append(try ProxyProcess(yaml: yaml, port: port))
            admins.append(admin)
            regions.append(region)
        }
        self.replicas = replicas
        adminPorts = admins
        self.regions = regions
        if expectSubscribed { for i in 0..<count { try waitUntil(i, subscribed: true) } }
    }

    var ports: [Int] { replicas.map(\.port) }

    func metrics(_ i: Int) throws -> PrometheusScrape {
        let c = try RawClient(port: adminPorts[i])
        defer { c.close() }
        c.send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        guard let r = c.response() else { throw TestError("no /metrics answer") }
        return try PrometheusScrape(text: r.bodyText)
    }

    /// Waits (at most `within` s) until replica `i` reports `etag_proxy_fleet_redis_up` as `subscribed`.
    func waitUntil(_ i: Int, subscribed: Bool, within: Double = 10) throws {
        let deadline = Date().addingTimeInterval(within)
        while Date() < deadline {
            if let up = try? metrics(i).value("etag_proxy_fleet_redis_up"), up == (subscribed ? 1 : 0) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestError("replica \(i) did not become \(subscribed ? "subscribed" : "unsubscribed")")
    }

    func stop() {
        for r in replicas { r.signal(SIGTERM) }
        for r in replicas { _ = r.waitForExit() }
        for name in regions { SharedCache.unlink(name: name) }
    }
}

/// One request on a fresh connection; nil when no answer came.
func send(_ port: Int, _ raw: String, timeout: Double = 20) -> HTTPMessage? {
    guard let c = try? RawClient(port: port, timeout: timeout) else { return nil }
    defer { c.close() }
    c.send(raw)
    return c.response()
}

func putRequest(_ method: String = "PUT", _ path: String, body: String, ifMatch: String?) -> String {
    "\(method) \(path) HTTP/1.1\r\nHost: a\r\n" + (ifMatch.map { "If-Match: \($0)\r\n" } ?? "")
        + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

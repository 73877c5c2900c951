import EtagCache
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `limits.held_memory` (issue #10 item 11): clients that ask for large bodies and never read them pin at most
/// the budget plus a buffer each, are served untagged past it, and the memory goes back when they leave.
@Suite("Held memory: a slow-reader flood stays inside limits.held_memory", .serialized)
struct HeldMemoryTests {
    static let bodySize = 4 << 20
    static let readers = 60
    /// A sanitizer's allocator keeps freed memory in quarantine: RSS says nothing there (`scripts/test --asan`).
    static let rssMeaningful = ProcessInfo.processInfo.environment["ETAG_TEST_SANITIZER"] == nil

    /// The proxy process's resident set, from /proc.
    static func rss(_ pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }

    /// Reads one response head from `fd` (the body stays unread); whether it carries an ETag.
    static func headHasETag(_ fd: Int32) -> Bool? {
        var head: [UInt8] = []
        var b = [UInt8](repeating: 0, count: 1)
        while head.count < 16384 {
            guard read(fd, &b, 1) == 1 else { return nil }
            head.append(b[0])
            if head.count >= 4 && head.suffix(4) == [13, 10, 13, 10] { break }
        }
        return String(decoding: head, as: UTF8.self).lowercased().contains("\r\netag:")
    }

    @Test func aSlowReaderFloodIsBoundedAndServedUntaggedPastTheBudget() throws {
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: Self.bodySize)
        let up = try TestUpstream { req in
            .respond(
                status: 200, headers: [("Content-Type", "application/json")],
                body: req.target == "/big" ? big : Array("{\"small\":true}".utf8))
        }
        defer { up.stop() }
        let port = try freePort()
        let region = uniqueRegionName()
        defer { SharedCache.unlink(name: region) }
        let proxy = try ProxyProcess(
            yaml: """
                listen: 127.0.0.1:\(port)
                upstream: http://127.0.0.1:\(up.port)
                workers: 1
                access_log: off
                cache:
                  name: \(region.dropFirst())
                  size: 1MiB
                  collapse: false
                etag:
                  max_body: 8MiB
                limits:
                  held_memory: 24MiB
                timeouts:
                  send: 3s
                """, port: port)
        defer {
            proxy.signal(SIGTERM)
            _ = proxy.waitForExit()
        }
        let pid = proxy.process.processIdentifier
        // Warm up: one big answer read whole, so the allocator has seen a body of this size.
        let warm = try RawRequest.send(port: port, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(warm.status == 200 && warm.body.count == Self.bodySize && warm.header("ETag") != nil)
        Thread.sleep(forTimeInterval: 0.2)
        let base = Self.rss(pid)

        // 60 clients ask for 4 MiB each and read nothing (a 4 KiB receive buffer): 240 MiB if each were held.
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        for _ in 0..<Self.readers {
            let fd = try Sockets.connect(port: port, timeout: 5, receiveBuffer: 4096)
            flood.append(fd)
            let req = Array("GET /big HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
            _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        }
        Thread.sleep(forTimeInterval: 1.0)
        let during = Self.rss(pid)
        #expect(
            // The budget, a buffer per reader, and what the allocator keeps of freed bodies.
            !Self.rssMeaningful || during - base < 130 << 20,
            "RSS grew by \((during - base) >> 20) MiB with \(Self.readers) slow readers (budget 24 MiB)")

        // Everyone else is served meanwhile, tagged.
        let small = try RawRequest.send(port: port, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(small.status == 200 && small.header("ETag") != nil)

        // Past the budget the bodies went on untagged; within it, some were held and tagged.
        let tagged = flood.map { Self.headHasETag($0) }
        #expect(tagged.allSatisfy { $0 != nil }, "every slow reader got a head")
        let withTag = tagged.filter { $0 == true }.count
        print(
            "held-memory flood: base \(base >> 20) MiB, during +\((during - base) >> 20) MiB, "
                + "\(withTag) of \(Self.readers) tagged")
        #expect(withTag >= 1 && withTag < Self.readers / 2, "\(withTag) held and tagged under a 24 MiB budget")

        // They leave: the memory goes back to the system.
        for fd in flood { close(fd) }
        flood = []
        Thread.sleep(forTimeInterval: 1.5)
        let after = Self.rss(pid)
        print("held-memory flood: after the readers left +\((after - base) >> 20) MiB")
        #expect(
            !Self.rssMeaningful || after - base < 24 << 20,
            "RSS \((after - base) >> 20) MiB above the start after the readers left")
    }

    @Test func aClientThatStopsReadingIsCutBySendTimeoutNotKeepalive() throws {
        let big = [UInt8](repeating: UInt8(ascii: "y"), count: Self.bodySize)
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: big) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstream: up) {
            $0.timeouts.send = 500
            $0.timeouts.keepalive = 30_000
            $0.etag.maxBody = 8 << 20
        }
        defer { proxy.stop() }
        let fd = try Sockets.connect(port: proxy.port, timeout: 5, receiveBuffer: 4096)
        defer { close(fd) }
        let req = Array("GET /big HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        Thread.sleep(forTimeInterval: 1.5)  // the held answer sits queued; the client reads nothing
        // Now read: the connection was cut after timeouts.send, so the body ends short of 4 MiB.
        var total = 0
        var buf = [UInt8](repeating: 0, count: 65536)
        let start = Date()
        while Date().timeIntervalSince(start) < 5 {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            total += n
        }
        #expect(total < Self.bodySize, "cut by the send timeout: \(total) bytes arrived")
        #expect(Date().timeIntervalSince(start) < 4)
    }
}

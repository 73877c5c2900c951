import EtagCache
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Concurrent writers holding the same valid ETag: exactly one wins, the rest get 412, and exactly one write
/// reaches the upstream — across worker threads and across processes sharing the region.
@Suite("Concurrent writers: one winner, no lost update", .serialized)
struct ConcurrentWritersTests {
    /// Sends the PUTs at once (one connection each, spread over `ports`), returns the statuses.
    static func race(ports: [Int], count: Int, tag: String, round: Int) -> [Int] {
        let statuses = Shared([Int]())
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let body = "{\"round\":\(round),\"writer\":\(i)}"
            let raw =
                "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let status =
                (try? RawClient(port: ports[i % ports.count], timeout: 20)).flatMap { c -> Int? in
                    defer { c.close() }
                    c.send(raw)
                    return c.response()?.status
                } ?? 0
            statuses.update { $0.append(status) }
        }
        return statuses.get
    }

    static func currentTag(port: Int) throws -> String {
        let c = try RawClient(port: port)
        defer { c.close() }
        c.send("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        guard let t = c.response()?.header("ETag") else { throw TestError("no ETag") }
        return t
    }

    func check(_ statuses: [Int], _ round: Int) {
        #expect(statuses.count == 20, "round \(round)")
        #expect(
            statuses.filter { (200..<300).contains($0) }.count == 1,
            "round \(round): exactly one winner, got \(statuses.sorted())")
        #expect(statuses.filter { $0 == 412 }.count == 19, "round \(round)")
    }

    @Test func twentyWritersAcrossTwoWorkers() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { req in .delay(req.method == "GET" ? 0 : 0.01, store.handle(req)) }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 2 }
        defer { proxy.stop() }
        for round in 0..<10 {
            let before = store.writeCount
            let tag = try Self.currentTag(port: proxy.port)
            check(Self.race(ports: [proxy.port], count: 20, tag: tag, round: round), round)
            #expect(store.writeCount == before + 1, "round \(round): exactly one write at the upstream")
        }
    }

    @Test func twentyWritersAcrossTwoProcesses() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { req in .delay(req.method == "GET" ? 0 : 0.01, store.handle(req)) }
        defer { up.stop() }
        let pair = try ProcessPair(upstreamPort: up.port)
        defer { pair.stop() }
        let (pa, pb) = (pair.a.port, pair.b.port)
        // 200 rounds of 20 racers (issue #10); a round takes ~40 ms.
        for round in 0..<200 {
            let before = store.writeCount
            let tag = try Self.currentTag(port: round % 2 == 0 ? pa : pb)
            check(Self.race(ports: [pa, pb], count: 20, tag: tag, round: round), round)
            #expect(store.writeCount == before + 1, "round \(round): exactly one write at the upstream")
        }
    }

    @Test func aKilledOwnersLeaseExpiresAndTheNextWriteProceeds() throws {
        // Writes to /slow hang at the upstream for 5 s, so the first writer still holds the lease when killed.
        let up = try TestUpstream { req in
            req.method == "PUT" && req.bodyText == "first"
                ? .delay(5, .respond(status: 200, headers: [], body: []))
                : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
        defer { up.stop() }
        let pair = try ProcessPair(upstreamPort: up.port, workers: 1, extraYAML: "concurrency:\n  lease_ttl: 1s\n")
        defer { pair.stop() }
        let (a, pa, pb) = (pair.a, pair.a.port, pair.b.port)
        let first = try RawClient(port: pa)
        defer { first.close() }
        first.send("PUT /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirst")
        Thread.sleep(forTimeInterval: 0.3)  // A now holds /slow's lease, waiting on the upstream
        a.signal(SIGKILL)
        _ = a.waitForExit()
        let start = Date()
        let r = try RawRequest.send(port: pb, "PUT /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nsecond")
        let waited = Date().timeIntervalSince(start)
        #expect(r.status == 200)
        #expect(waited < 3, "the dead owner's lease expired (lease_ttl 1s)")
        #expect(waited > 0.3, "it was still held when B asked")
    }

    /// A writer that resets its connection after its PUT went upstream: the upstream may still apply it, so the
    /// lease is left to expire rather than freed — the next writer with the same old tag waits, then sees the
    /// first write in its pre-fetch and gets 412. Freed at once, the second pre-fetch would still see the old
    /// state (the upstream applies the first write only after 0.6 s) and both writes would land: a lost update.
    @Test func aWriterThatResetsAfterItsWriteWentUpstreamKeepsTheLeaseUntilItExpires() throws {
        let store = RecordingStore(["/r": "v0"])
        let up = try TestUpstream { req in
            if req.method == "PUT" && req.bodyText == "first" { Thread.sleep(forTimeInterval: 0.6) }
            return store.handle(req)
        }
        let proxy = try ProxyHarness(upstream: up) { $0.concurrency.leaseTTL = 1500 }
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /r HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        let first = try proxy.connect()
        first.send("PUT /r HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 5\r\n\r\nfirst")
        let deadline = Date().addingTimeInterval(5)
        while !up.requests.contains(where: { $0.method == "PUT" }) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        first.reset()
        let start = Date()
        let second = try proxy.request(
            "PUT /r HTTP/1.1\r\nHost: a\r\nIf-Match: \(tag)\r\nContent-Length: 6\r\n\r\nsecond")
        #expect(second.status == 412, "the second writer saw the first write")
        #expect(Date().timeIntervalSince(start) > 0.5, "it waited for the abandoned lease")
        #expect(store.writeCount == 1)
        #expect(store.value("/r") == "first")
    }

    @Test func getsAreNeverBlockedByAWrite() throws {
        let up = try TestUpstream { req in
            req.method == "PUT"
                ? .delay(1.0, .respond(status: 200, headers: [], body: []))
                : .respond(status: 200, headers: [], body: Array("r".utf8))
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let writer = try proxy.connect()
        defer { writer.close() }
        writer.send("PUT /busy HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        Thread.sleep(forTimeInterval: 0.1)
        let start = Date()
        #expect(try proxy.request("GET /busy HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
        #expect(Date().timeIntervalSince(start) < 0.5)
    }

    /// Writers queued behind a write that hangs at the upstream each get a 503 by their own `lease_wait` (not only
    /// the head of the queue), and the lease still serializes: the hanging write finishes with 200.
    @Test func everyQueuedWriterHearsByItsLeaseWaitDeadline() throws {
        let up = try TestUpstream { req in
            req.method == "PUT" && req.bodyText == "first"
                ? .delay(1.5, .respond(status: 200, headers: [], body: []))
                : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
        let proxy = try ProxyHarness(upstream: up) {
            $0.workers = 1
            $0.concurrency.leaseWait = 300
        }
        defer { proxy.stop() }
        let first = try proxy.connect()
        defer { first.close() }
        first.send("PUT /hang HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirst")
        Thread.sleep(forTimeInterval: 0.2)  // the first writer holds /hang's lease
        let start = Date()
        let waited = Shared([Double]())
        let statuses = Shared([Int]())
        DispatchQueue.concurrentPerform(iterations: 3) { i in
            let r = try? RawRequest.send(
                port: proxy.port, "PUT /hang HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n\(i)")
            statuses.update { $0.append(r?.status ?? 0) }
            waited.update { $0.append(Date().timeIntervalSince(start)) }
        }
        #expect(statuses.get == [503, 503, 503])
        #expect(waited.get.allSatisfy { $0 > 0.25 && $0 < 1.0 }, "each by its own deadline: \(waited.get)")
        #expect(first.response()?.status == 200)
        #expect(up.requests.filter { $0.method == "PUT" }.count == 1)
    }
}

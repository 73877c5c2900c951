import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A fleet: three etag-proxy processes that share no memory (different `cache.name`, as on three hosts) and one
/// real redis-server. The guarantees of one host must hold across them: one writer per resource, no stale 304
/// after a write through another replica, and the configured behaviour while Redis is down.
@Suite("Fleet: leases and invalidation shared through Redis across replicas", .serialized)
struct FleetTests {
    /// Sends `count` writes at once with the same If-Match, spread over `ports`; returns (writer, status).
    static func race(
        ports: [Int], count: Int, method: String, tag: String, round: Int
    ) -> [(writer: Int, status: Int)] {
        let out = Shared([(writer: Int, status: Int)]())
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let body = "{\"round\":\(round),\"writer\":\(i)}"
            let r = send(ports[i % ports.count], putRequest(method, "/persons/1", body: body, ifMatch: tag))
            out.update { $0.append((i, r?.status ?? 0)) }
        }
        return out.get
    }

    /// One optimistic increment of `/counter` through `port`: GET it, PUT n + 1 with its ETag in If-Match. The
    /// write's status (0: no answer), or nil when the read failed.
    static func increment(_ port: Int) -> Int? {
        guard let r = send(port, "GET /counter HTTP/1.1\r\nHost: a\r\n\r\n"), let tag = r.header("ETag"),
            let n = Int(r.bodyText.filter(\.isNumber))
        else { return nil }
        return send(port, putRequest("PUT", "/counter", body: "{\"n\":\(n + 1)}", ifMatch: tag))?.status ?? 0
    }

    static func tag(_ port: Int, _ path: String = "/persons/1") throws -> String {
        guard let t = send(port, "GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")?.header("ETag") else {
            throw TestError("no ETag from \(port)")
        }
        return t
    }

    @Test func twentyWritersOverThreeReplicasOneWinsEveryRound() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { req in .delay(req.method == "GET" ? 0 : 0.005, store.handle(req)) }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(count: 3, upstreamPort: up.port, redisPort: redis.port)
        defer { fleet.stop() }
        // 50 rounds of PUTs, then 50 of PATCHes; each round's tag is read from the replica after the last winner's.
        for round in 0..<100 {
            let method = round < 50 ? "PUT" : "PATCH"
            let before = store.writeCount
            let tag = try Self.tag(fleet.ports[round % 3])
            let results = Self.race(ports: fleet.ports, count: 20, method: method, tag: tag, round: round)
            let winners = results.filter { (200..<300).contains($0.status) }
            #expect(winners.count == 1, "round \(round): one winner, got \(results.map(\.status).sorted())")
            #expect(results.filter { $0.status == 412 }.count == 19, "round \(round)")
            #expect(store.writeCount == before + 1, "round \(round): exactly one write reached the upstream")
            if let w = winners.first {
                #expect(store.value("/persons/1") == "{\"round\":\(round),\"writer\":\(w.writer)}", "round \(round)")
            }
            if winners.count != 1 { break }
        }
        let acquired = try (0..<3).map {
            try fleet.metrics($0).value("etag_proxy_fleet_lease_requests_total", ["result": "acquired"]) ?? 0
        }
        #expect(acquired.reduce(0, +) >= 2000, "every write took the fleet lease: \(acquired)")
        // Freed after each answer (the release does not hold the client up).
        #expect(try redis.eventually(["KEYS", "*:lease:*"], "*0") == "*0", "every lease was released")
    }

    @Test func optimisticReadModifyWriteLoopsLoseNoIncrement() throws {
        let store = RecordingStore(["/counter": "{\"n\":0}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(count: 3, upstreamPort: up.port, redisPort: redis.port)
        defer { fleet.stop() }
        let perClient = 15
        let done = Shared(0)
        let ports = fleet.ports
        DispatchQueue.concurrentPerform(iterations: 6) { client in
            let port = ports[client % 3]
            var mine = 0
            var attempts = 0
            while mine < perClient && attempts < 2000 {
                attempts += 1
                guard let s = Self.increment(port) else { continue }
                if (200..<300).contains(s) { mine += 1 }
            }
            done.update { $0 += mine }
        }
        #expect(done.get == 6 * perClient)
        #expect(store.value("/counter") == "{\"n\":\(6 * perClient)}", "no increment lost")
        #expect(store.writeCount == 6 * perClient, "no write doubled")
    }

    @Test func aWriteThroughOneReplicaEndsAnothersStale304() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(count: 3, upstreamPort: up.port, redisPort: redis.port)
        defer { fleet.stop() }
        let (a, b) = (fleet.ports[0], fleet.ports[1])
        var delays: [Double] = []
        for round in 0..<20 {
            let old = try Self.tag(a)
            let cached = send(a, "GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(old)\r\n\r\n")
            #expect(cached?.status == 304, "round \(round): A answers 304 from its cache")
            #expect(cached?.header("Cache-Status")?.contains("hit") == true, "round \(round)")
            let w = send(b, putRequest("PUT", "/persons/1", body: "{\"v\":\(round + 1)}", ifMatch: old))
            #expect(w?.status == 200, "round \(round)")
            let wrote = Date()
            // Within the propagation delay (well under a second on loopback), A no longer answers 304.
            var status = 304
            while status == 304 && Date().timeIntervalSince(wrote) < 1 {
                status = send(a, "GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(old)\r\n\r\n")?.status ?? 0
            }
            delays.append(Date().timeIntervalSince(wrote))
            #expect(status == 200, "round \(round): A sees B's write")
        }
        let received = try fleet.metrics(0).value("etag_proxy_fleet_invalidations_total", ["direction": "received"])
        #expect((received ?? 0) >= 20)
        let sent = try fleet.metrics(1).value("etag_proxy_fleet_invalidations_total", ["direction": "sent"])
        #expect((sent ?? 0) >= 20)
        delays.sort()
        print(
            "fleet invalidation seen by another replica after: p50 \(delays[10] * 1000) ms, max \(delays[19] * 1000) ms"
        )
    }

    @Test func redisDownFailsClosedAndTheFleetRecoversWithoutARestart() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(count: 2, upstreamPort: up.port, redisPort: redis.port)
        defer { fleet.stop() }
        let a = fleet.ports[0]
        let tag = try Self.tag(a)
        #expect(send(a, "GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")?.status == 304)
        let upstreamGets = up.requests.count

        redis.kill()
        try fleet.waitUntil(0, subscribed: false)
        let before = store.writeCount
        let refused = send(a, putRequest("PUT", "/persons/1", body: "{\"v\":1}", ifMatch: tag))
        #expect(refused?.status == 503)
        #expect(refused?.header("Content-Type") == "application/problem+json")
        #expect(refused?.bodyText.contains("the fleet lock store is unreachable") == true, "\(refused?.bodyText ?? "")")
        #expect(store.writeCount == before, "nothing was written upstream")
        // Conditional reads are revalidated with the upstream (its answer is still a 304); plain reads work.
        let revalidated = send(a, "GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        #expect(revalidated?.status == 304)
        #expect(
            revalidated?.header("Cache-Status")?.contains("fwd=bypass") == true, "\(revalidated?.description ?? "")")
        #expect(up.requests.count > upstreamGets, "the upstream was asked")
        #expect(send(a, "GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n")?.status == 200)
        let ready = send(fleet.adminPorts[0], "GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(ready?.status == 200)
        #expect(ready?.bodyText.contains("Redis unreachable") == true)
        #expect(try fleet.metrics(0).value("etag_proxy_fleet_lease_requests_total", ["result": "unreachable"]) == 1)

        try redis.start()
        try fleet.waitUntil(0, subscribed: true)
        try fleet.waitUntil(1, subscribed: true)
        // The workers' command connections reconnect on their own backoff (at most 2 s).
        var status = 0
        let deadline = Date().addingTimeInterval(5)
        while status != 200 && Date() < deadline {
            status = send(a, putRequest("PUT", "/persons/1", body: "{\"v\":2}", ifMatch: tag))?.status ?? 0
            if status != 200 { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(status == 200, "writes work again once Redis is back")
        #expect(store.value("/persons/1") == "{\"v\":2}")
    }

    @Test func aRedisKilledMidRunLosesAndDoublesNoWrite() throws {
        let store = RecordingStore(["/counter": "{\"n\":0}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(count: 3, upstreamPort: up.port, redisPort: redis.port)
        defer { fleet.stop() }
        let succeeded = Shared(0)
        let refused = Shared(0)
        let stopAt = Date().addingTimeInterval(4)
        let outage = Thread { [redis = UncheckedBox(redis)] in
            Thread.sleep(forTimeInterval: 1)
            redis.value.kill()
            Thread.sleep(forTimeInterval: 1)
            try? redis.value.start()
        }
        outage.start()
        let ports = fleet.ports
        DispatchQueue.concurrentPerform(iterations: 6) { client in
            let port = ports[client % 3]
            while Date() < stopAt {
                guard let s = Self.increment(port) else { continue }
                if (200..<300).contains(s) { succeeded.update { $0 += 1 } }
                if s == 503 {
                    refused.update { $0 += 1 }
                    Thread.sleep(forTimeInterval: 0.02)
                }
            }
        }
        while outage.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
        #expect(refused.get > 0, "the outage was seen")
        #expect(succeeded.get > 0)
        #expect(store.value("/counter") == "{\"n\":\(succeeded.get)}", "every 2xx is one increment, no more, no less")
        #expect(store.writeCount == succeeded.get)
    }

    @Test func localModeFallsBackToTheHostsLeaseWhileRedisIsDown() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(count: 1, upstreamPort: up.port, redisPort: redis.port, onRedisDown: "local")
        defer { fleet.stop() }
        let a = fleet.ports[0]
        let tag = try Self.tag(a)
        redis.kill()
        try fleet.waitUntil(0, subscribed: false)
        #expect(send(a, "GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")?.status == 304)
        let w = send(a, putRequest("PUT", "/persons/1", body: "{\"v\":1}", ifMatch: tag))
        #expect(w?.status == 200)
        #expect(store.value("/persons/1") == "{\"v\":1}")
        // The host's own check still holds: the old tag is refused.
        #expect(send(a, putRequest("PUT", "/persons/1", body: "{\"v\":2}", ifMatch: tag))?.status == 412)
        let m = try fleet.metrics(0)
        #expect((m.value("etag_proxy_fleet_lease_requests_total", ["result": "local"]) ?? 0) >= 2)
        #expect((m.value("etag_proxy_fleet_invalidations_total", ["direction": "unsent"]) ?? 0) >= 1)
    }

    @Test func aReplicaKilledWhileHoldingALeaseHoldsOthersOnlyUntilLeaseTTL() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { req in
            .delay(req.method == "PUT" && req.bodyText.contains("slow") ? 5 : 0, store.handle(req))
        }
        defer { up.stop() }
        let redis = try RedisProcess()
        defer { redis.stop() }
        let fleet = try Fleet(
            count: 2, upstreamPort: up.port, redisPort: redis.port, extraYAML: "concurrency:\n  lease_ttl: 1s\n")
        defer { fleet.stop() }
        let (a, b) = (fleet.ports[0], fleet.ports[1])
        let slow = try RawClient(port: a)
        slow.send(putRequest("PUT", "/persons/1", body: "{\"slow\":true}", ifMatch: nil))
        let deadline = Date().addingTimeInterval(5)
        while !up.requests.contains(where: { $0.method == "PUT" }) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(try redis.command(["KEYS", "*:lease:*"]) == "*1", "A holds the fleet lease")
        fleet.replicas[0].signal(SIGKILL)
        slow.close()
        let started = Date()
        let w = send(b, putRequest("PUT", "/persons/1", body: "{\"v\":1}", ifMatch: nil))
        let waited = Date().timeIntervalSince(started)
        #expect(w.map { (200..<300).contains($0.status) } == true, "\(w?.description ?? "no answer")")
        #expect(waited >= 0.3 && waited < 3, "B waited for the killed replica's lease to expire: \(waited) s")
    }

    @Test func aPasswordProtectedRedisIsUsedWithItsPasswordAndAWrongOneFailsClosed() throws {
        let store = RecordingStore(["/persons/1": "{\"v\":0}"])
        let up = try TestUpstream { store.handle($0) }
        defer { up.stop() }
        let redis = try RedisProcess(password: "s3cret")
        defer { redis.stop() }
        let good = try Fleet(count: 1, upstreamPort: up.port, redisPort: redis.port, password: "s3cret")
        defer { good.stop() }
        let tag = try Self.tag(good.ports[0])
        #expect(send(good.ports[0], putRequest("PUT", "/persons/1", body: "{\"v\":1}", ifMatch: tag))?.status == 200)
        let bad = try Fleet(
            count: 1, upstreamPort: up.port, redisPort: redis.port, password: "wrong", expectSubscribed: false)
        defer { bad.stop() }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try bad.metrics(0).value("etag_proxy_fleet_redis_up") == 0)
        let current = try Self.tag(bad.ports[0])
        let refused = send(bad.ports[0], putRequest("PUT", "/persons/1", body: "{\"v\":2}", ifMatch: current))
        #expect(refused?.status == 503)
        #expect(store.value("/persons/1") == "{\"v\":1}")
    }
}

/// Hands a test-owned object to a helper thread the test waits for.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

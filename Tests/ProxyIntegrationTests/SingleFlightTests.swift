import Foundation
import Testing
import TestSupport

@Suite("Concurrent misses for one key are collapsed into one upstream request per worker", .serialized)
struct SingleFlightTests {
    /// Sends `n` requests at once on separate connections; returns the responses.
    func concurrent(_ proxy: ProxyHarness, _ requests: [String]) throws -> [HTTPMessage] {
        let clients = try requests.map { _ in try proxy.connect() }
        defer { clients.forEach { $0.close() } }
        for (c, r) in zip(clients, requests) { c.send(r) }
        return clients.compactMap { $0.response() }
    }

    @Test func oneUpstreamRequestAnswersAllWaiters() throws {
        let up = try TestUpstream { _ in .delay(0.3, .respond(status: 200, headers: [], body: Array("slow".utf8))) }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let tag = try expectedETag(Array("slow".utf8))
        var reqs = (0..<5).map { _ in "GET /sf HTTP/1.1\r\nHost: a\r\n\r\n" }
        reqs.append("GET /sf HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
        reqs.append("HEAD /sf HTTP/1.1\r\nHost: a\r\n\r\n")
        let clients = try reqs.map { _ in try proxy.connect() }
        defer { clients.forEach { $0.close() } }
        for (c, r) in zip(clients, reqs) { c.send(r) }
        let responses = clients.enumerated().compactMap { i, c in c.response(head: i == 6) }
        #expect(responses.count == 7)
        #expect(responses[0..<5].allSatisfy { $0.status == 200 && $0.bodyText == "slow" && $0.header("ETag") == tag })
        #expect(responses[5].status == 304, "each waiter evaluates its own If-None-Match")
        #expect(responses[6].status == 200 && responses[6].header("Content-Length") == "4")
        #expect(up.requests.count == 1)
        #expect(responses.contains { $0.header("Cache-Status")?.contains("collapsed") == true })
    }

    @Test func differentUsersAreNotCollapsed() throws {
        let up = try TestUpstream { req in
            .delay(0.2, .respond(status: 200, headers: [], body: Array((req.header("Authorization") ?? "").utf8)))
        }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let r = try concurrent(proxy, ["a", "b"].map { "GET /me HTTP/1.1\r\nHost: a\r\nAuthorization: \($0)\r\n\r\n" })
        #expect(Set(r.map(\.bodyText)) == ["a", "b"])
        #expect(up.requests.count == 2)
    }

    @Test func aVaryingResponseIsNotShared() throws {
        let up = try TestUpstream { req in
            .delay(
                0.2,
                .respond(status: 200, headers: [("Vary", "X-Tenant")], body: Array((req.header("X-Tenant") ?? "").utf8))
            )
        }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let r = try concurrent(proxy, ["1", "2"].map { "GET /t HTTP/1.1\r\nHost: a\r\nX-Tenant: \($0)\r\n\r\n" })
        #expect(r.count == 2)
        #expect(r[0].bodyText == "1")
        #expect(r[1].bodyText == "2")
    }

    @Test func whenTheLeaderFailsTheWaitersAskForThemselves() throws {
        let count = Shared(0)
        let up = try TestUpstream { _ in
            var n = 0
            count.update {
                n = $0; $0 += 1
            }
            return n == 0
                ? .delay(0.2, .respond(status: 503, headers: [], body: Array("busy".utf8)))
                : .respond(status: 200, headers: [], body: Array("ok".utf8))
        }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let r = try concurrent(proxy, (0..<3).map { _ in "GET /l HTTP/1.1\r\nHost: a\r\n\r\n" })
        #expect(r.count == 3)
        #expect(r.filter { $0.status == 503 }.count == 1)
        #expect(r.filter { $0.status == 200 }.count == 2)
    }
}

import Foundation
import Testing
import TestSupport

/// A held, length-delimited upstream body is read straight into its storage (issue #14 item 2): what the client
/// gets and the tag it carries are the upstream's bytes exactly, however the reads fall — across many reads, with
/// bytes after the body in the same read, and when the held body turns into a stream half-way.
@Suite("Held bodies read in place: intact, tagged, and delimited")
struct HeldBodyInPlaceTests {
    /// Bytes that differ from their neighbours, so a shifted, repeated or stale piece shows.
    static func pattern(_ n: Int, seed: Int = 0) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: ($0 &+ seed) &* 31 &+ ($0 &+ seed) >> 8) }
    }

    /// GETs `order` on one client connection (one worker, no collapsing), each target answered with its body:
    /// every answer must be that body, tagged with its digest. Returns how many upstream connections carried them.
    func taggedGETs(_ bodies: [String: [UInt8]], order: [String]) throws -> Int {
        let up = try TestUpstream { req in .respond(status: 200, headers: [], body: bodies[req.target] ?? []) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstream: up) {
            $0.workers = 1
            $0.cache.collapse = false
        }
        defer { proxy.stop() }
        let c = try proxy.connect(timeout: 30)
        defer { c.close() }
        for target in order {
            let body = try #require(bodies[target])
            c.send("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.response())
            #expect(r.status == 200)
            #expect(r.body == body, "\(target): the body as the upstream sent it")
            #expect(r.header("ETag") == (try expectedETag(body)))
        }
        return up.connections
    }

    @Test func aBodyOfManyReadsIsTaggedAndRelayedIntact() throws {
        // 700 KiB and an odd tail: the first read holds the head and the first piece, the rest lands in place.
        // Twice each, alternating, on one pooled upstream connection: storage read in place by one exchange never
        // shows in the next.
        let bodies = ["/a": Self.pattern(700 * 1024 + 5), "/b": Self.pattern(700 * 1024 + 5, seed: 7)]
        #expect(try taggedGETs(bodies, order: ["/a", "/b", "/a", "/b"]) == 1, "one upstream connection for all")
    }

    @Test(arguments: [40_000, 65_536, 200_000])
    func aBodyThatArrivesWithItsHeadIsHeldWhereItWasRead(size: Int) throws {
        // 40,000 bytes: the whole body in the read that brought the head (the read buffer becomes its storage);
        // 64 KiB: all but a few hundred bytes of it; 200,000: the buffer is grown for the rest.
        _ = try taggedGETs(["/r": Self.pattern(size, seed: size)], order: ["/r", "/r", "/r"])
    }

    @Test func bytesAfterTheBodyInTheSameReadAreNotPartOfIt() throws {
        // A confused upstream sends more than Content-Length says: the body ends where the length says, the
        // extra bytes never reach a client, and the connection that carried them is not reused.
        let body = Self.pattern(100_000)
        let reply =
            Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
            + body + Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra".utf8)
        let up = try TestUpstream { req in
            req.target == "/confused" ? .raw(reply, close: false) : .respond(status: 200, headers: [], body: body)
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 1 }
        defer { proxy.stop() }
        let c = try proxy.connect(timeout: 30)
        defer { c.close() }
        c.send("GET /confused HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try #require(c.response())
        #expect(r.status == 200)
        #expect(r.body == body)
        #expect(r.header("ETag") == (try expectedETag(body)))
        c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        let next = try #require(c.response())
        #expect(next.body == body, "the next exchange gets its own answer, not the extra bytes")
        #expect(up.connections == 2, "the connection with stray bytes was closed, not pooled")
    }

    @Test func aHeldBodyThatTurnsIntoAStreamHalfWayIsRelayedIntact() throws {
        // limits.held_memory runs out while the 3 MiB body is being read in place: the part held so far and the
        // read that did not fit go out first, then the rest streams; the client gets every byte, untagged.
        let body = Self.pattern(3 * 1024 * 1024 + 3)
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: body) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstream: up) {
            $0.workers = 1
            $0.etag.maxBody = 8 * 1024 * 1024
            $0.limits.heldMemory = 1024 * 1024
            $0.limits.bufferSize = 64 * 1024
        }
        defer { proxy.stop() }
        let c = try proxy.connect(timeout: 30)
        defer { c.close() }
        for _ in 0..<2 {
            c.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try #require(c.response())
            #expect(r.status == 200)
            #expect(r.header("ETag") == nil, "past the budget: sent on untagged")
            #expect(r.body.count == body.count)
            #expect(r.body == body)
        }
    }
}

@testable import EtagCore
import Testing

@Suite("Fleet: the Redis URL, keys, messages and what a replica does while Redis is down (pure)")
struct FleetProtocolTests {
    @Test(arguments: [
        ("redis://127.0.0.1:6379", RedisEndpoint(host: "127.0.0.1", port: 6379)),
        ("redis://redis", RedisEndpoint(host: "redis", port: 6379)),
        ("redis://:s3cret@redis:7000/2", RedisEndpoint(host: "redis", port: 7000, db: 2, password: "s3cret")),
        ("redis://app:p%40ss@[::1]:6380", RedisEndpoint(host: "::1", port: 6380, user: "app", password: "p@ss")),
        ("redis://:a@b@h/", RedisEndpoint(host: "h", port: 6379, password: "a@b")),
        ("  REDIS://h:1/15  ", RedisEndpoint(host: "h", port: 1, db: 15)),
    ])
    func aRedisURLParses(text: String, expected: RedisEndpoint) throws {
        #expect(try ConfigValues.redis(text).get() == expected)
    }

    @Test(arguments: [
        "127.0.0.1:6379", "rediss://h", "redis://", "redis://h:0", "redis://h:70000", "redis://h/x", "redis://h/-1",
        "redis://user@h", "redis://:@h", "redis://:%zz@h", "redis://h?db=1", "http://h",
    ])
    func aBrokenRedisURLIsRefused(text: String) {
        #expect(throws: ConfigValueError.self) { try ConfigValues.redis(text).get() }
    }

    @Test func passwordsNeverShow() throws {
        let e = RedisEndpoint(host: "h", port: 1, db: 3, user: "u", password: "pw")
        #expect(e.description == "redis://u:***@h:1/3")
        #expect(RedisEndpoint(host: "h", password: "pw").description == "redis://:***@h:6379")
        #expect(RedisEndpoint.redacted("redis://:pw@h:1") == "redis://:***@h:1")
        #expect(RedisEndpoint.redacted("redis://u:p:w@h") == "redis://u:***@h")
        #expect(RedisEndpoint.redacted("redis://h:1") == "redis://h:1")
        // A user name with URL delimiters renders escaped, so the rendering parses back to the same user.
        let odd = RedisEndpoint(host: "h", user: "a:b@c/%", password: "pw")
        #expect(odd.description == "redis://a%3Ab%40c%2F%25:***@h:6379")
        #expect(try ConfigValues.redis(odd.description).get().user == "a:b@c/%")
    }

    @Test func keysNameTheFleetAndTheResource() {
        let d = Digest20(a: 1, b: 2, c: 3)
        let hex = String(decoding: d.hex, as: UTF8.self)
        #expect(String(decoding: FleetProtocol.leaseKey("f1", d), as: UTF8.self) == "f1:lease:" + hex)
        #expect(String(decoding: FleetProtocol.generationKey("f1", d), as: UTF8.self) == "f1:gen:" + hex)
        #expect(String(decoding: FleetProtocol.channel("f1"), as: UTF8.self) == "f1:invalidate")
    }

    @Test func aMessageRoundTripsWithTheGenerationTheScriptAppends() {
        let d = Digest20(a: 0xDEAD_BEEF, b: .max, c: 7)
        let m = FleetProtocol.message(uri: d, origin: 0x0123_4567_89AB_CDEF) + Array(" 42".utf8)
        #expect(
            FleetProtocol.parse(m) == FleetProtocol.Invalidation(uri: d, origin: 0x0123_4567_89AB_CDEF, generation: 42))
    }

    @Test(arguments: [
        "", "x", "0123 4567 1", String(repeating: "a", count: 40) + " " + String(repeating: "b", count: 16),
        String(repeating: "A", count: 40) + " " + String(repeating: "b", count: 16) + " 1",
        String(repeating: "a", count: 40) + " " + String(repeating: "g", count: 16) + " 1",
        String(repeating: "a", count: 40) + " " + String(repeating: "b", count: 16) + " -1",
        String(repeating: "a", count: 40) + " " + String(repeating: "b", count: 16) + " 1 2",
        String(repeating: "a", count: 40) + "  " + String(repeating: "b", count: 16) + " 1",
    ])
    func somethingElseOnTheChannelIsIgnored(text: String) {
        #expect(FleetProtocol.parse(Array(text.utf8)) == nil)
    }

    @Test func tokensAreDistinctPerSerial() {
        let a = FleetProtocol.token(origin: 5, serial: 1)
        #expect(a != FleetProtocol.token(origin: 5, serial: 2))
        #expect(a != FleetProtocol.token(origin: 6, serial: 1))
        #expect(String(decoding: a, as: UTF8.self) == "0000000000000005-0000000000000001")
    }

    @Test(arguments: [
        (RedisDownMode.failClosed, true, FleetPolicy.LeaseOutcome.refuse, true),
        (.failClosed, false, .refuse, false),
        (.local, true, .local, true),
        (.local, false, .local, true),
    ])
    func whatAReplicaDoesWhileRedisIsDown(
        mode: RedisDownMode, subscribed: Bool, lease: FleetPolicy.LeaseOutcome, fromCache: Bool
    ) {
        #expect(FleetPolicy.leaseUnreachable(mode) == lease)
        #expect(FleetPolicy.answersFromCache(mode, subscribed: subscribed) == fromCache)
    }

    @Test func reconnectsBackOffToTwoSeconds() {
        #expect(
            (0...10).map(FleetPolicy.reconnectDelay) == [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000, 2000])
    }
}

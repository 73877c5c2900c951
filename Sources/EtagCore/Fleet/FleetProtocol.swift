import EtagHTTP

/// What the replicas of a fleet say to each other through Redis: the key names, the scripts, the invalidation
/// message. Every atomic operation touches one key, so it works unchanged on Redis Cluster (a key's slot decides
/// its node; PUBLISH reaches every node's subscribers). Pure.
public enum FleetProtocol {
    /// `<name>:lease:<resource hex>`: the fleet's write lease of one resource, holding its owner's token.
    public static func leaseKey(_ name: String, _ resource: Digest20) -> [UInt8] {
        Array(name.utf8) + Array(":lease:".utf8) + resource.hex
    }

    /// `<name>:gen:<uri hex>`: how many writes through the fleet invalidated the URI (kept for a while after the
    /// last one), the number each invalidation message carries.
    public static func generationKey(_ name: String, _ uri: Digest20) -> [UInt8] {
        Array(name.utf8) + Array(":gen:".utf8) + uri.hex
    }

    /// The channel every replica subscribes to.
    public static func channel(_ name: String) -> [UInt8] { Array(name.utf8) + Array(":invalidate".utf8) }

    /// Extends the lease (ARGV[2] ms) only while ARGV[1] holds it: 1, or 0 when it expired and may be another's.
    public static let renewScript: [UInt8] = Array(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
            .utf8)

    /// Frees the lease only while ARGV[1] holds it: 1, or 0 when it had expired (the write outlived its lease).
    public static let releaseScript: [UInt8] = Array(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0".utf8)

    /// Counts the URI's generation (KEYS[1], kept ARGV[3] ms) and publishes ARGV[2] plus it on channel ARGV[1],
    /// in one step: a reply means every replica subscribed now has been sent the message.
    public static let invalidateScript: [UInt8] = Array(
        ("local g = redis.call('incr', KEYS[1]) redis.call('pexpire', KEYS[1], ARGV[3]) "
            + "redis.call('publish', ARGV[1], ARGV[2] .. ' ' .. g) return g").utf8)

    /// The invalidation message before the script appends the generation: `<uri hex> <origin hex>`. The origin
    /// names the sending process, which has already applied the invalidation to its own region.
    public static func message(uri: Digest20, origin: UInt64) -> [UInt8] {
        uri.hex + [UInt8(ascii: " ")] + hex64(origin)
    }

    public struct Invalidation: Equatable, Sendable {
        public var uri: Digest20
        public var origin: UInt64
        public var generation: UInt64
        public init(uri: Digest20, origin: UInt64, generation: UInt64) {
            self.uri = uri
            self.origin = origin
            self.generation = generation
        }
    }

    /// A published message, or nil when it is not one (a message from something else on the channel is ignored).
    public static func parse(_ m: [UInt8]) -> Invalidation? {
        let parts = m.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 40, parts[1].count == 16, !parts[2].isEmpty, parts[2].count <= 20,
            let uri = digest(hex: parts[0]), let origin = number(hex: parts[1]),
            parts[2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let gen = UInt64(String(decoding: parts[2], as: UTF8.self))
        else { return nil }
        return Invalidation(uri: uri, origin: origin, generation: gen)
    }

    /// An owner token: the process's origin, then a number unique within it.
    public static func token(origin: UInt64, serial: UInt64) -> [UInt8] {
        hex64(origin) + [UInt8(ascii: "-")] + hex64(serial)
    }

    static func hex64(_ v: UInt64) -> [UInt8] {
        (0..<16).map { i in Digest20.hexDigit(UInt8((v >> (60 - 4 * UInt64(i))) & 0xF)) }
    }

    static func number(hex: ArraySlice<UInt8>) -> UInt64? {
        var v: UInt64 = 0
        for c in hex {
            guard let d = ByteClass.hexValue(c), c < 0x41 || c > 0x46 else { return nil }  // lowercase only
            v = v << 4 | d
        }
        return v
    }

    static func digest(hex: ArraySlice<UInt8>) -> Digest20? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20)
        var i = hex.startIndex
        while i < hex.endIndex {
            guard let hi = number(hex: hex[i..<i + 1]), let lo = number(hex: hex[i + 1..<i + 2]) else { return nil }
            bytes.append(UInt8(hi << 4 | lo))
            i += 2
        }
        return Digest20(bytes)
    }
}

/// What a replica does when the fleet's Redis cannot be asked, by `fleet.on_redis_down`. Pure.
public enum FleetPolicy {
    public enum LeaseOutcome: Equatable, Sendable {
        /// 503 problem+json: the write is not sent.
        case refuse
        /// Write under this host's lease only.
        case local
    }

    /// A leased write whose fleet lease cannot be asked for (Redis unreachable or timed out).
    public static func leaseUnreachable(_ mode: RedisDownMode) -> LeaseOutcome {
        mode == .failClosed ? .refuse : .local
    }

    /// Whether a fresh local entry may answer a conditional read without the upstream: only while this replica
    /// hears every invalidation (subscribed), or when it was told to trust its own host then (`local`).
    public static func answersFromCache(_ mode: RedisDownMode, subscribed: Bool) -> Bool {
        subscribed || mode == .local
    }

    /// The fleet's line in `/readyz`. A replica stays ready while Redis is down — reads still work, and taking
    /// every replica out of its load balancer at once would turn a Redis outage into a total one — and says what
    /// it does meanwhile.
    public static func readinessNote(_ mode: RedisDownMode, subscribed: Bool) -> String {
        if subscribed { return "fleet: Redis reachable, invalidations subscribed" }
        return mode == .failClosed
            ? "fleet: Redis unreachable: leased writes are answered 503, conditional reads revalidated upstream"
            : "fleet: Redis unreachable: this host's leases and invalidation only (fleet.on_redis_down: local)"
    }

    /// Reconnect delays: 50 ms doubling to 2 s, so a restarted Redis is found within about two seconds.
    public static func reconnectDelay(attempt: Int) -> Int { min(50 << min(max(attempt, 0), 6), 2_000) }
}

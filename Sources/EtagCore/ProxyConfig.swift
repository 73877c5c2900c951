import EtagHTTP

/// The whole configuration as one value with defaults. Loaded by `EtagConfig` from YAML, environment and flags.
/// Durations are milliseconds (libuv timers count in ms); sizes are bytes.
public struct ProxyConfig: Sendable, Equatable {
    public var listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8080)
    public var upstream: UpstreamURL = UpstreamURL(host: "127.0.0.1", port: 9000)
    /// How long a looked-up upstream address is used before the name is looked up again.
    public var upstreamResolveTTL: Int = 30_000
    /// Worker threads, each with its own event loop and listener; nil means one per core (`auto`).
    public var workers: Int? = nil
    /// Join a port another etag-proxy already listens on (a zero-downtime upgrade) instead of refusing to start.
    public var listenReuse: Bool = false
    public var accessLog: AccessLogTarget = .stdout
    public var accessLogFormat: AccessLogFormat = .text
    /// Access-log bytes waiting for the log output; lines beyond it are dropped and counted.
    public var accessLogBuffer: Int = 1024 * 1024
    /// Send the answers held during one loop iteration with one io_uring call (where the kernel allows it).
    public var ioUring: Bool = true
    public var timeouts = Timeouts()
    public var limits = Limits()
    public var upstreamPool = UpstreamPool()
    public var forwarding = Forwarding()
    public var etag = ETag()
    public var cache = Cache()
    public var keys = Keys()
    public var concurrency = Concurrency()
    public var admin = Admin()
    /// TLS on the client listener (off without a certificate).
    public var tls = ListenerTLS()
    /// TLS to an `https://` upstream.
    public var upstreamTLS = UpstreamTLS()
    /// Replicas sharing write leases and invalidation through Redis (off without `fleet.redis`).
    public var fleet = Fleet()

    public init() {}

    /// A fleet of replicas: write leases and cache invalidation shared through one Redis.
    public struct Fleet: Sendable, Equatable {
        /// The Redis all replicas share; nil: no fleet (one host's guarantees only).
        public var redis: RedisEndpoint? = nil
        /// Prefix of the fleet's Redis keys and its invalidation channel, so several fleets can share one Redis.
        public var name: String = "etag-proxy"
        /// What a replica does while Redis is unreachable.
        public var onRedisDown: RedisDownMode = .failClosed
        /// The Redis password (`AUTH`); replaces one given in `redis`'s URL.
        public var password: String? = nil
        public var enabled: Bool { redis != nil }
        public init() {}
    }

    /// The client listener's certificate: with `cert` and `key` set, the listener speaks https only.
    public struct ListenerTLS: Sendable, Equatable {
        /// PEM certificate, optionally followed by its chain.
        public var cert: String? = nil
        /// PEM private key of `cert`.
        public var key: String? = nil
        public var minVersion: TLSVersion = .tls12
        public var enabled: Bool { cert != nil }
        public init() {}
    }

    /// How the proxy speaks TLS to an `https://` upstream.
    public struct UpstreamTLS: Sendable, Equatable {
        /// The name sent as SNI and checked against the certificate; nil: the upstream's host.
        public var serverName: String? = nil
        /// PEM trust anchors used instead of the system store; nil: the system store.
        public var caFile: String? = nil
        /// Verify the certificate chain and host name (off only by an explicit, logged opt-out).
        public var verify: Bool = true
        /// PEM client certificate and key, for an upstream that requires one (mTLS).
        public var cert: String? = nil
        public var key: String? = nil
        public var minVersion: TLSVersion = .tls12
        public init() {}
    }

    /// The admin listener: health, readiness and metrics, never forwarded upstream.
    public struct Admin: Sendable, Equatable {
        /// Where it listens; nil: no admin listener (`admin.listen: off`).
        public var listen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9901)
        /// `/readyz` answers 503 once the upstream has been unreachable for this long.
        public var unreadyAfter: Int = 10_000
        public init() {}
    }

    public struct ETag: Sendable, Equatable {
        /// Bodies larger than this stream through unchanged and without an ETag (never buffered beyond it).
        public var maxBody: Int = 8 * 1024 * 1024
        /// What happens to an ETag the upstream sends itself.
        public var upstream: UpstreamETagMode = .replace
        public init() {}
    }

    public struct Timeouts: Sendable, Equatable {
        /// No response head from the upstream within this → 504.
        public var upstream: Int = 60_000
        /// Connecting to the upstream takes longer than this → 504.
        public var connect: Int = 5_000
        /// The client's request head has not fully arrived within this → 408 and close.
        public var clientHeader: Int = 10_000
        /// No request body bytes for this long → 408 and close.
        public var clientBody: Int = 60_000
        /// An idle keep-alive client connection is closed after this.
        public var keepalive: Int = 75_000
        /// A client that accepts no response bytes for this long is disconnected.
        public var send: Int = 60_000
        /// An idle pooled upstream connection is closed after this.
        public var upstreamIdle: Int = 60_000
        /// On SIGTERM, in-flight exchanges get this long to finish.
        public var shutdownGrace: Int = 10_000
        /// Connecting to the fleet's Redis, or one of its replies, takes longer → the connection counts as down.
        public var redis: Int = 1_000
        public init() {}
    }

    public struct Limits: Sendable, Equatable {
        /// Largest request head → 431 beyond it.
        public var maxHeaderSize: Int = 32 * 1024
        /// Most header fields in a request or response head → 431 / 502 beyond it.
        public var maxHeaderCount: Int = 100
        /// Largest request body → 413 beyond it.
        public var maxBodySize: Int = 16 * 1024 * 1024
        /// Largest upstream response head → 502 beyond it.
        public var maxUpstreamHeaderSize: Int = 64 * 1024
        /// Bytes buffered per direction before the proxy stops reading from the sender.
        public var bufferSize: Int = 256 * 1024
        /// Response bytes the whole process holds in memory (bodies held to be tagged, answers queued for slow
        /// readers); past it, held bodies go on untagged.
        public var heldMemory: Int = 256 * 1024 * 1024
        /// Most client connections per worker; more are refused by closing them at once.
        public var maxConnections: Int = 10_000
        public init() {}
    }

    public struct UpstreamPool: Sendable, Equatable {
        /// Idle keep-alive upstream connections kept per worker.
        public var keepalive: Int = 64
        public init() {}
    }

    public struct Forwarding: Sendable, Equatable {
        /// Send the client's Host upstream (true) or the upstream's own authority (false, nginx's default).
        public var preserveHost: Bool = false
        /// The pseudonym in Via (RFC 9110 §7.6.3).
        public var via: String = "etag-proxy"
        /// Request fields whose names hold `_` are not forwarded (nginx's `underscores_in_headers off`): a backend
        /// that folds `_` into `-` (CGI-style) could read `Transfer_Encoding` as a framing field the proxy did not.
        public var dropUnderscoreFields: Bool = true
        public init() {}
    }

    public struct Cache: Sendable, Equatable {
        /// How long a stored ETag answers 304 without asking the upstream.
        public var ttl: Int = 30_000
        /// Name of the shared-memory region; nil derives it from the listen address.
        public var name: String? = nil
        /// Size of the shared-memory region.
        public var size: Int = 16 * 1024 * 1024
        /// Request fields whose values select the representation and so are part of the cache key.
        public var keyHeaders: [String] = ["authorization", "cookie", "accept", "accept-encoding", "accept-language"]
        /// A successful write to `/a/b` also invalidates `/a`.
        public var invalidateParent: Bool = true
        /// Concurrent misses for one key on one worker share one upstream fetch (single-flight).
        public var collapse: Bool = true
        public init() {}
    }

    /// How the cache keys, invalidation and write leases name a resource.
    public struct Keys: Sendable, Equatable {
        /// `/persons/9/` and `/persons/9` are one resource (JSON APIs almost always mean one by both).
        public var ignoreTrailingSlash: Bool = true
        public init() {}
    }

    public struct Concurrency: Sendable, Equatable {
        /// Turns the If-Match checks on writes on or off.
        public var enabled: Bool = true
        /// PUT/PATCH/DELETE without If-Match get 428 (RFC 6585 §3).
        public var enforceIfMatch: Bool = false
        /// The methods whose writes are checked and serialized (among PUT, PATCH, DELETE, POST).
        public var methods: [HTTPMethod] = [.put, .patch, .delete]
        /// Which ETag a successful write answers with.
        public var etagAfterWrite: ETagAfterWrite = .refetch
        /// A PUT's re-fetch GET is sent pipelined right behind it on the same upstream connection (`Refetch.pipelines`).
        /// Off by default: it is right only for an upstream that answers a connection's requests one after the other.
        public var pipelineRefetch: Bool = false
        /// A write lease not renewed for this long (its owner died) can be taken over.
        public var leaseTTL: Int = 5_000
        /// A write waiting longer than this for its resource's lease gets 503.
        public var leaseWait: Int = 30_000
        public init() {}
    }
}

public enum ETagAfterWrite: String, Sendable, Equatable, CaseIterable {
    /// GET the resource again inside the lease and answer with its ETag (the one the next GET returns).
    case refetch
    /// Hash the write response's own body.
    case body
    /// No ETag on write responses.
    case none
}

public enum UpstreamETagMode: String, Sendable, Equatable, CaseIterable {
    /// The proxy's own SHA-1 tag replaces the upstream's.
    case replace
    /// An upstream ETag is passed through (and its conditional requests left to the upstream).
    case keep
}

/// What a fleet replica does while its Redis is unreachable.
public enum RedisDownMode: String, Sendable, Equatable, CaseIterable {
    /// Leased writes are answered 503 (nothing is written upstream) and conditional reads are revalidated with the
    /// upstream: the fleet's guarantees hold, at the cost of availability.
    case failClosed = "fail_closed"
    /// The replica falls back to its own host's leases and invalidation (logged once, counted).
    case local
}

/// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int = 6379
    public var db: Int = 0
    /// ACL user (Redis 6+); nil: the default user.
    public var user: String? = nil
    public var password: String? = nil
    public init(host: String, port: Int = 6379, db: Int = 0, user: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.db = db
        self.user = user
        self.password = password
    }
    /// A user name as a URL holds it (RFC 3986 §3.2.1: `%`, `:`, `@`, `/` escaped).
    static func escaped(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "%": out += "%25"
            case ":": out += "%3A"
            case "@": out += "%40"
            case "/": out += "%2F"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `text` (a URL as the operator wrote it) with any password replaced by `***`, for error messages.
    public static func redacted(_ text: String) -> String {
        guard let scheme = text.firstRange(of: "://"), let at = text.lastIndex(of: "@"), at > scheme.upperBound,
            let colon = text[scheme.upperBound..<at].firstIndex(of: ":")
        else { return text }
        return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
    }

    /// The URL without its password (what logs and `--print-config` show).
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        let cred = password == nil ? (user.map { "\(Self.escaped($0))@" } ?? "") : "\(Self.escaped(user ?? "")):***@"
        return "redis://\(cred)\(h):\(port)" + (db == 0 ? "" : "/\(db)")
    }
}

/// The oldest TLS version accepted.
public enum TLSVersion: String, Sendable, Equatable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"
}

public enum AccessLogTarget: String, Sendable, Equatable, CaseIterable {
    case stdout, stderr, off
}

/// `HOST:PORT` or `[IPv6]:PORT` to listen on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The upstream origin: `http://HOST[:PORT][/base/path]` or `https://…`.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    /// `http` or `https`.
    public var scheme: String = "http"
    public var host: String
    public var port: Int
    /// A path prefix put before every forwarded target ("" for none).
    public var basePath: String = ""
    public init(scheme: String = "http", host: String, port: Int, basePath: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
    }
    public var isTLS: Bool { scheme == "https" }
    /// The authority sent as Host when the client's Host is not preserved (RFC 9110 §7.2: the port only when it
    /// is not the scheme's default).
    public var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (isTLS ? 443 : 80) ? h : "\(h):\(port)"
    }
    public var description: String { "\(scheme)://\(authority)\(basePath)" }
}

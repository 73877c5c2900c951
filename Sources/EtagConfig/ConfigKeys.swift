import EtagCore

/// One config key: its dotted path, what it holds, and how a text value is applied.
public struct ConfigKey: Sendable {
    public let path: String
    public let meaning: String
    public let defaultText: String
    let apply: @Sendable (inout ProxyConfig, String) -> String?

    /// Whether a YAML list is accepted (joined with commas).
    public var acceptsList: Bool { path == "cache.key_headers" || path == "concurrency.methods" }

    /// `ETAG_PROXY_` + the path upper-cased, dots as underscores.
    public var environmentName: String {
        "ETAG_PROXY_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
    }
}

/// Every key the config file, the environment and the README know.
public enum ConfigKeys {
    static func duration(_ path: String, _ def: String, _ meaning: String, _ set: @escaping @Sendable (inout ProxyConfig, Int) -> Void)
        -> ConfigKey
    {
        ConfigKey(path: path, meaning: meaning, defaultText: def) { c, text in
            guard let ms = ConfigValues.duration(text) else {
                return "'\(text)' is not a duration (like 250ms, 30s, 5m)"
            }
            set(&c, ms)
            return nil
        }
    }

    static func positiveDuration(_ path: String, _ def: String, _ meaning: String,
                                 _ set: @escaping @Sendable (inout ProxyConfig, Int) -> Void) -> ConfigKey {
        ConfigKey(path: path, meaning: meaning, defaultText: def) { c, text in
            guard let ms = ConfigValues.duration(text), ms > 0 else {
                return "'\(text)' is not a positive duration (like 250ms, 30s, 5m)"
            }
            set(&c, ms)
            return nil
        }
    }

    static func size(_ path: String, _ def: String, _ meaning: String, min: Int = 1,
                     _ set: @escaping @Sendable (inout ProxyConfig, Int) -> Void) -> ConfigKey {
        ConfigKey(path: path, meaning: meaning, defaultText: def) { c, text in
            guard let n = ConfigValues.size(text) else { return "'\(text)' is not a size (like 512, 64KiB, 10MiB)" }
            guard n >= min else { return "must be at least \(min) bytes" }
            set(&c, n)
            return nil
        }
    }

    static func count(_ path: String, _ def: String, _ meaning: String, min: Int,
                      _ set: @escaping @Sendable (inout ProxyConfig, Int) -> Void) -> ConfigKey {
        ConfigKey(path: path, meaning: meaning, defaultText: def) { c, text in
            guard let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= min else {
                return "'\(text)' is not a whole number of at least \(min)"
            }
            set(&c, n)
            return nil
        }
    }

    /// A key whose value names one case of `E` (any letter case); `names` lists them for the error message.
    static func choice<E: RawRepresentable & Sendable>(
        _ path: String, _ def: String, _ meaning: String, names: String,
        _ set: @escaping @Sendable (inout ProxyConfig, E) -> Void
    ) -> ConfigKey where E.RawValue == String {
        ConfigKey(path: path, meaning: meaning, defaultText: def) { c, text in
            guard let v = E(rawValue: text.lowercased()) else { return "'\(text)' is not \(names)" }
            set(&c, v)
            return nil
        }
    }

    static func bool(_ path: String, _ def: String, _ meaning: String,
                     _ set: @escaping @Sendable (inout ProxyConfig, Bool) -> Void) -> ConfigKey {
        ConfigKey(path: path, meaning: meaning, defaultText: def) { c, text in
            switch text.lowercased() {
            case "true", "yes", "on", "1": set(&c, true)
            case "false", "no", "off", "0": set(&c, false)
            default: return "'\(text)' is not true or false"
            }
            return nil
        }
    }

    public static let all: [ConfigKey] = [
        ConfigKey(path: "listen", meaning: "Address to accept clients on, HOST:PORT (0.0.0.0:PORT in a container).",
                  defaultText: "127.0.0.1:8080") { c, text in
            guard let a = ConfigValues.listen(text) else { return "'\(text)' is not HOST:PORT" }
            c.listen = a
            return nil
        },
        ConfigKey(path: "upstream", meaning: "The API behind the proxy, http://HOST[:PORT][/base-path].",
                  defaultText: "http://127.0.0.1:9000") { c, text in
            switch ConfigValues.upstream(text) {
            case .success(let u): c.upstream = u
            case .failure(let e): return "'\(text)' \(e.message)"
            }
            return nil
        },
        ConfigKey(path: "workers", meaning: "Worker threads, each with its own event loop, listener and upstream pool; `auto` = one per core.",
                  defaultText: "auto") { c, text in
            if text.lowercased() == "auto" {
                c.workers = nil
                return nil
            }
            guard let n = Int(text), n >= 1, n <= 256 else { return "'\(text)' is not a number from 1 to 256 or auto" }
            c.workers = n
            return nil
        },
        ConfigKey(path: "access_log", meaning: "Where the access log goes, one line per request: stdout, stderr or off.",
                  defaultText: "stdout") { c, text in
            guard let t = AccessLogTarget(rawValue: text.lowercased()) else { return "'\(text)' is not stdout, stderr or off" }
            c.accessLog = t
            return nil
        },
        positiveDuration("timeouts.upstream", "60s", "No response head from the upstream within this → 504.") { $0.timeouts.upstream = $1 },
        positiveDuration("timeouts.connect", "5s", "Connecting to the upstream takes longer → 504.") { $0.timeouts.connect = $1 },
        positiveDuration("timeouts.client_header", "10s", "A request head not complete within this → 408 and close.") { $0.timeouts.clientHeader = $1 },
        positiveDuration("timeouts.client_body", "60s", "No request body bytes for this long → 408 and close.") { $0.timeouts.clientBody = $1 },
        positiveDuration("timeouts.keepalive", "75s", "An idle client keep-alive connection is closed after this.") { $0.timeouts.keepalive = $1 },
        positiveDuration("timeouts.send", "60s", "A client that takes no response bytes for this long is disconnected.") { $0.timeouts.send = $1 },
        positiveDuration("timeouts.upstream_idle", "60s", "An idle pooled upstream connection is closed after this.") { $0.timeouts.upstreamIdle = $1 },
        duration("timeouts.shutdown_grace", "10s", "On SIGTERM/SIGINT, in-flight exchanges get this long to finish.") { $0.timeouts.shutdownGrace = $1 },
        size("limits.max_header_size", "32KiB", "Largest request head → 431.", min: 256) { $0.limits.maxHeaderSize = $1 },
        count("limits.max_header_count", "100", "Most header fields in a head → 431 (request) / 502 (response).", min: 1) { $0.limits.maxHeaderCount = $1 },
        size("limits.max_body_size", "16MiB", "Largest request body → 413.", min: 0) { $0.limits.maxBodySize = $1 },
        size("limits.max_upstream_header_size", "64KiB", "Largest upstream response head → 502.", min: 256) { $0.limits.maxUpstreamHeaderSize = $1 },
        size("limits.buffer_size", "256KiB", "Bytes buffered per direction before reading from the sender pauses.", min: 4096) { $0.limits.bufferSize = $1 },
        count("limits.max_connections", "10000", "Client connections per worker; more are closed at once.", min: 1) { $0.limits.maxConnections = $1 },
        count("upstream_pool.keepalive", "64", "Idle keep-alive upstream connections kept per worker (0: none).", min: 0) { $0.upstreamPool.keepalive = $1 },
        bool("io_uring", "true", "Send the answers of one loop iteration with one io_uring call; off, or where the kernel refuses io_uring: one write each.") { $0.ioUring = $1 },
        bool("forwarding.preserve_host", "false", "Send the client's Host upstream instead of the upstream's authority.") { $0.forwarding.preserveHost = $1 },
        ConfigKey(path: "forwarding.via", meaning: "Pseudonym this proxy adds to Via.", defaultText: "etag-proxy") { c, text in
            guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
                return "'\(text)' must be a token (letters, digits, - . _)"
            }
            c.forwarding.via = text
            return nil
        },
        size("etag.max_body", "8MiB", "Bodies larger than this pass through unchanged, without an ETag.", min: 0) { $0.etag.maxBody = $1 },
        choice("etag.upstream", "replace", "An ETag the upstream sends: `replace` it with ours, or `keep` it (and leave its conditionals to the upstream).",
               names: "replace or keep") { (c, m: UpstreamETagMode) in c.etag.upstream = m },
        positiveDuration("cache.ttl", "30s", "How long a stored ETag answers 304 without asking the upstream.") { $0.cache.ttl = $1 },
        ConfigKey(path: "cache.name", meaning: "Shared-memory region name; processes with the same name share it. Default: derived from listen.",
                  defaultText: "(derived)") { c, text in
            guard !text.isEmpty, text.count <= 200, !text.contains("/") else { return "'\(text)' must be a non-empty name without '/'" }
            c.cache.name = text
            return nil
        },
        size("cache.size", "16MiB", "Size of the shared-memory region (about 140 bytes per entry).", min: 1024 * 1024) { $0.cache.size = $1 },
        ConfigKey(path: "cache.key_headers", meaning: "Request fields whose values are part of the cache key (a list of at most 64), besides those the upstream's Vary names.",
                  defaultText: "authorization, cookie, accept, accept-encoding, accept-language") { c, text in
            let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            guard names.allSatisfy({ n in n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) } }) else {
                return "'\(text)' must be a list of field names"
            }
            guard names.count <= CacheKeyBuilder.maxKeyHeaders else {
                return "at most \(CacheKeyBuilder.maxKeyHeaders) field names"
            }
            c.cache.keyHeaders = names
            return nil
        },
        bool("cache.collapse", "true", "Concurrent GET/HEAD misses for one key on one worker share one upstream fetch.") { $0.cache.collapse = $1 },
        bool("cache.invalidate_parent", "true", "A successful write to /a/b also invalidates /a.") { $0.cache.invalidateParent = $1 },
        bool("concurrency.enabled", "true", "Check If-Match on writes at all.") { $0.concurrency.enabled = $1 },
        bool("concurrency.enforce_if_match", "false", "PUT/PATCH/DELETE without If-Match get 428.") { $0.concurrency.enforceIfMatch = $1 },
        ConfigKey(path: "concurrency.methods", meaning: "Methods whose writes are checked (If-Match) and serialized per resource (a list).",
                  defaultText: "[PUT, PATCH, DELETE]") { c, text in
            let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }.filter { !$0.isEmpty }
            guard names.allSatisfy({ ["PUT", "PATCH", "DELETE", "POST"].contains($0) }) else {
                return "'\(text)' must list methods among PUT, PATCH, DELETE, POST"
            }
            c.concurrency.methods = names
            return nil
        },
        choice("concurrency.etag_after_write", "refetch", "The ETag of a successful write: `refetch` (GET it again: the tag the next GET returns), `body` (hash the write's answer) or `none`.",
               names: "refetch, body or none") { (c, m: ETagAfterWrite) in c.concurrency.etagAfterWrite = m },
        positiveDuration("concurrency.lease_ttl", "5s", "A write lease its owner stops renewing (a dead process) is free after this.") { $0.concurrency.leaseTTL = $1 },
        positiveDuration("concurrency.lease_wait", "30s", "A write waiting longer than this for its resource gets 503.") { $0.concurrency.leaseWait = $1 },
    ]
}

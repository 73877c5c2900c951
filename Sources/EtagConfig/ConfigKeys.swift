import EtagCore
import EtagHTTP

/// Every key the config file, the environment and the README know, in the README's order. The README's key table
/// is these rows (`ConfigKey.markdownRow`; a test keeps the two equal); the defaults come from `ProxyConfig()`.
public enum ConfigKeys {
    /// The methods `concurrency.methods` may name, and how the config spells them.
    static let guardableMethods: [(name: String, method: HTTPMethod)] = [
        ("PUT", .put), ("PATCH", .patch), ("DELETE", .delete), ("POST", .post),
    ]

    public static let all: [ConfigKey] = [
        ConfigKey(
            "listen", "Address to accept clients on, `HOST:PORT` or `[V6]:PORT` (the shipped file: `0.0.0.0:8080`).",
            apply: { c, text in
                guard let a = ConfigValues.listen(text) else { return "'\(text)' is not HOST:PORT" }
                c.listen = a
                return nil
            }, render: { $0.listen.description }),
        ConfigKey(
            "upstream",
            "The API behind the proxy, `http://HOST[:PORT][/base-path]` or `https://…` (TLS: `upstream_tls.*`).",
            apply: { c, text in
                switch ConfigValues.upstream(text) {
                case .success(let u): c.upstream = u
                case .failure(let e): return "'\(text)' \(e.message)"
                }
                return nil
            }, render: { $0.upstream.description }),
        .bool(
            "listen_reuse", \.listenReuse,
            "Start even where another process already listens on `listen`, sharing the port (`--takeover`): start the new proxy, then SIGTERM the old one, which drains. Off: a second instance is a start-up error."
        ),
        .duration(
            "upstream_resolve_ttl", \.upstreamResolveTTL,
            "How long the upstream host's looked-up address is used; names are looked up when connecting, so one that does not resolve yet is a 502 until it does."
        ),
        ConfigKey(
            "workers", "Worker threads (each its own event loop, listener and upstream pool); `auto` = one per core.",
            apply: { c, text in
                if text.lowercased() == "auto" {
                    c.workers = nil
                    return nil
                }
                guard let n = Int(text), n >= 1, n <= 256 else {
                    return "'\(text)' is not a number from 1 to 256 or auto"
                }
                c.workers = n
                return nil
            }, render: { $0.workers.map(String.init) ?? "auto" }),
        .choice(
            "access_log.target", \.accessLog,
            "`stdout`, `stderr` or `off` (`access_log: off` is short for it)."),
        .choice(
            "access_log.format", \.accessLogFormat,
            "`text`, or `json`: one object per line with `time`, `client`, `method`, `target`, `protocol`, `status`, `bytes`, `duration_ms`, `upstream_status`, `upstream_ms`, `cache`, `write_check`, `request_id` (the container's config)."
        ),
        .size(
            "access_log.buffer", \.accessLogBuffer, min: 4096,
            "Log bytes waiting for a slow output; lines beyond it are dropped and counted (`etag_proxy_access_log_dropped_total`), never waited for."
        ),
        .bool(
            "io_uring", \.ioUring,
            "Send the answers of one loop iteration with one io_uring call; `false`, or where the kernel refuses io_uring (seccomp, `kernel.io_uring_disabled`): one `write` each."
        ),
        .duration(
            "timeouts.upstream", \.timeouts.upstream,
            "No response head (or no body bytes) from the upstream within this → 504 (or close mid-body)."),
        .duration("timeouts.connect", \.timeouts.connect, "Connecting to the upstream takes longer → 504."),
        .duration(
            "timeouts.client_header", \.timeouts.clientHeader,
            "The request head is not complete within this → 408 and close (silent close if nothing came)."),
        .duration(
            "timeouts.client_body", \.timeouts.clientBody, "No request body bytes for this long → 408 and close."),
        .duration(
            "timeouts.keepalive", \.timeouts.keepalive, "An idle client keep-alive connection is closed after this."),
        .duration(
            "timeouts.send", \.timeouts.send, "A client that takes no response bytes for this long is disconnected."),
        .duration(
            "timeouts.upstream_idle", \.timeouts.upstreamIdle,
            "An idle pooled upstream connection is closed after this."),
        .duration(
            "timeouts.shutdown_grace", \.timeouts.shutdownGrace, positive: false,
            "On SIGTERM/SIGINT, in-flight exchanges get this long to finish."),
        .duration(
            "timeouts.redis", \.timeouts.redis,
            "Connecting to the fleet's Redis, or waiting for one of its replies, takes longer → that connection is down (see `fleet.on_redis_down`) and is made again with backoff."
        ),
        .size("limits.max_header_size", \.limits.maxHeaderSize, min: 256, "Largest request head → 431."),
        .count(
            "limits.max_header_count", \.limits.maxHeaderCount, min: 1,
            "Most header fields in a head → 431 (request) / 502 (response)."),
        .size(
            "limits.max_body_size", \.limits.maxBodySize, min: 0,
            "Largest request body → 413 (declared length checked before reading; chunked as it arrives)."),
        .size(
            "limits.max_upstream_header_size", \.limits.maxUpstreamHeaderSize, min: 256,
            "Largest upstream response head → 502."),
        .size(
            "limits.buffer_size", \.limits.bufferSize, min: 4096,
            "Bytes waiting per direction before the proxy stops reading from the sender."),
        .size(
            "limits.held_memory", \.limits.heldMemory, min: 1024 * 1024,
            "Response bytes the process holds in memory at once (bodies held to be tagged, answers queued for slow "
                + "readers); past it, bodies are sent on untagged."),
        .count(
            "limits.max_connections", \.limits.maxConnections, min: 1,
            "Client connections per worker; more are closed at once."),
        .count(
            "upstream_pool.keepalive", \.upstreamPool.keepalive, min: 0,
            "Idle keep-alive upstream connections kept per worker (0: none)."),
        .bool(
            "forwarding.preserve_host", \.forwarding.preserveHost,
            "Send the client's Host upstream instead of the upstream's authority."),
        ConfigKey(
            "forwarding.via", "Pseudonym added to `Via`.",
            apply: { c, text in
                guard !text.isEmpty,
                    text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
                else {
                    return "'\(text)' must be a token (letters, digits, - . _)"
                }
                c.forwarding.via = text
                return nil
            }, render: { $0.forwarding.via }),
        .bool(
            "forwarding.drop_underscore_fields", \.forwarding.dropUnderscoreFields,
            "Request fields whose names hold `_` are not forwarded (like nginx's `underscores_in_headers off`): a backend that folds `_` into `-` cannot be handed a field the proxy did not read (`Transfer_Encoding`)."
        ),
        .size(
            "etag.max_body", \.etag.maxBody, min: 0,
            "Bodies larger than this stream through unchanged and without an ETag."),
        .choice(
            "etag.upstream", \.etag.upstream,
            "An ETag the upstream sends itself: `replace` it with the proxy's, or `keep` it."),
        .duration("cache.ttl", \.cache.ttl, "How long a stored ETag answers 304 without asking the upstream."),
        ConfigKey(
            "cache.name", "Shared-memory region name; processes with the same name share it.",
            apply: { c, text in
                guard !text.isEmpty, text.count <= 200, !text.contains("/") else {
                    return "'\(text)' must be a non-empty name without '/'"
                }
                c.cache.name = text
                return nil
            }, render: { $0.cache.name ?? "(derived from `listen`)" }),
        .size(
            "cache.size", \.cache.size, min: 1024 * 1024, "Size of the shared-memory region, about 140 bytes per entry."
        ),
        ConfigKey(
            "cache.key_headers",
            "Request fields whose values are part of the cache key (at most 64), besides those the upstream's Vary names.",
            list: true,
            apply: { c, text in
                let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                    .filter { !$0.isEmpty }
                guard
                    names.allSatisfy({ n in
                        n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }
                    })
                else {
                    return "'\(text)' must be a list of field names"
                }
                guard names.count <= CacheKeyBuilder.maxKeyHeaders else {
                    return "at most \(CacheKeyBuilder.maxKeyHeaders) field names"
                }
                c.cache.keyHeaders = names
                return nil
            }, render: { "[" + $0.cache.keyHeaders.joined(separator: ", ") + "]" }),
        .bool(
            "cache.collapse", \.cache.collapse,
            "Concurrent GET/HEAD misses for one key on one worker share one upstream fetch (single-flight)."),
        .bool(
            "cache.invalidate_parent", \.cache.invalidateParent, "A successful write to `/a/b` also invalidates `/a`."),
        .bool(
            "keys.ignore_trailing_slash", \.keys.ignoreTrailingSlash,
            "`/a/` and `/a` are one resource for the cache, invalidation and write leases (as repeated slashes always are; the client's Host counts only with `forwarding.preserve_host`)."
        ),
        .bool("concurrency.enabled", \.concurrency.enabled, "Check If-Match on writes and serialize them at all."),
        .bool(
            "concurrency.enforce_if_match", \.concurrency.enforceIfMatch,
            "PUT/PATCH/DELETE without If-Match get 428 Precondition Required."),
        ConfigKey(
            "concurrency.methods",
            "Methods whose writes are checked and serialized per resource (among PUT, PATCH, DELETE, POST).",
            list: true,
            apply: { c, text in
                let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
                    .filter { !$0.isEmpty }
                var methods: [HTTPMethod] = []
                for name in names {
                    guard let m = guardableMethods.first(where: { $0.name == name }) else {
                        return "'\(text)' must list methods among PUT, PATCH, DELETE, POST"
                    }
                    if !methods.contains(m.method) { methods.append(m.method) }
                }
                c.concurrency.methods = methods
                return nil
            },
            render: { c in
                "["
                    + c.concurrency.methods.compactMap { m in guardableMethods.first { $0.method == m }?.name }
                    .joined(separator: ", ") + "]"
            }),
        .choice(
            "concurrency.etag_after_write", \.concurrency.etagAfterWrite,
            "The ETag of a successful write: `refetch` (GET it again inside the lease: the tag the next GET returns), `body` (hash the write's answer) or `none`."
        ),
        .bool(
            "concurrency.pipeline_refetch", \.concurrency.pipelineRefetch,
            "Send a PUT's re-fetch GET right behind it on the same upstream connection (HTTP/1.1 pipelining; one round trip fewer). Only for an upstream that finishes each request on a connection before it starts the next: one that runs them side by side (some event-loop servers do) may answer the GET with the state before the PUT."
        ),
        .duration(
            "concurrency.lease_ttl", \.concurrency.leaseTTL,
            "A write lease its owner stops renewing (a killed process) is free after this."),
        .duration(
            "concurrency.lease_wait", \.concurrency.leaseWait,
            "A write waiting longer than this for its resource's lease gets 503."),
        ConfigKey(
            "admin.listen",
            "Admin listener for `/healthz`, `/readyz` and `/metrics` (the shipped file and the container: `0.0.0.0:9901`); `off` disables it.",
            apply: { c, text in
                if text.lowercased() == "off" {
                    c.admin.listen = nil
                    return nil
                }
                guard let a = ConfigValues.listen(text) else { return "'\(text)' is not HOST:PORT or off" }
                c.admin.listen = a
                return nil
            }, render: { $0.admin.listen?.description ?? "off" }),
        .duration(
            "admin.unready_after", \.admin.unreadyAfter,
            "`/readyz` answers 503 once the upstream has been unreachable for this long."),
        .path(
            "tls.cert", \.tls.cert,
            "PEM certificate (its chain may follow) that turns the client listener into https only; needs `tls.key`. Re-read on SIGHUP."
        ),
        .path("tls.key", \.tls.key, "PEM private key of `tls.cert`."),
        .choice(
            "tls.min_version", \.tls.minVersion,
            "Oldest TLS version the listener accepts (`1.2` or `1.3`); ALPN `http/1.1`, ECDHE with AES-GCM or ChaCha20 for TLS 1.2."
        ),
        .path(
            "upstream_tls.server_name", \.upstreamTLS.serverName,
            "Name sent as SNI and checked against the upstream's certificate (default: the upstream's host)."),
        .path(
            "upstream_tls.ca_file", \.upstreamTLS.caFile,
            "PEM trust anchors for the upstream's certificate, instead of the system store."),
        .bool(
            "upstream_tls.verify", \.upstreamTLS.verify,
            "Verify the upstream's certificate chain and host name; `false` is logged loudly at start and reload."),
        .path(
            "upstream_tls.cert", \.upstreamTLS.cert,
            "PEM client certificate for an upstream that requires one (mTLS); needs `upstream_tls.key`."),
        .path("upstream_tls.key", \.upstreamTLS.key, "PEM private key of `upstream_tls.cert`."),
        .choice(
            "upstream_tls.min_version", \.upstreamTLS.minVersion,
            "Oldest TLS version spoken to the upstream (`1.2` or `1.3`)."),
        ConfigKey(
            "fleet.redis",
            "The Redis shared by a fleet of replicas, `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`: write leases and invalidation then hold across them (README, \"Running a fleet\"); `off`: this host only.",
            secret: true,
            apply: { c, text in
                if text.lowercased() == "off" || text.isEmpty {
                    c.fleet.redis = nil
                    return nil
                }
                switch ConfigValues.redis(text) {
                case .success(let r): c.fleet.redis = r
                case .failure(let e): return "'\(RedisEndpoint.redacted(text))' \(e.message)"
                }
                return nil
            }, render: { $0.fleet.redis?.description ?? "off" }),
        ConfigKey(
            "fleet.redis_password",
            "The Redis password (`AUTH`), instead of one in `fleet.redis`'s URL; best set in the environment.",
            secret: true,
            apply: { c, text in
                c.fleet.password = text.isEmpty ? nil : text
                return nil
            }, render: { $0.fleet.password == nil ? "(none)" : "(set)" }),
        ConfigKey(
            "fleet.name",
            "Prefix of the fleet's Redis keys and its invalidation channel: fleets with other names share a Redis without meeting.",
            apply: { c, text in
                guard !text.isEmpty, text.count <= 100,
                    text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
                else {
                    return "'\(text)' must be 1 to 100 letters, digits, - . _"
                }
                c.fleet.name = text
                return nil
            }, render: { $0.fleet.name }),
        .choice(
            "fleet.on_redis_down", \.fleet.onRedisDown,
            "While Redis is unreachable: `fail_closed` answers leased writes 503 (nothing written upstream) and revalidates conditional reads with the upstream; `local` falls back to this host's leases and invalidation (logged, counted)."
        ),
    ]
}

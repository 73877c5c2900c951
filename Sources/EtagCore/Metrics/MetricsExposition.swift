/// What a scrape reports besides the workers' summed words: the shared region's occupancy, the process
/// readings and the build.
public struct MetricsExtras: Sendable, Equatable {
    public var cacheEntries: Int
    public var cacheCapacity: Int
    public var process: ProcessStats
    public var version: String
    /// Bytes of `limits.held_memory` in use (reserved by the workers) and the limit.
    public var heldMemory: Int
    public var heldMemoryLimit: Int
    /// Fleet mode: 1 while this process's subscriber hears the fleet's invalidations through Redis; nil: no fleet.
    public var fleetRedisUp: Int?

    public init(
        cacheEntries: Int, cacheCapacity: Int, process: ProcessStats, version: String, heldMemory: Int = 0,
        heldMemoryLimit: Int = 0, fleetRedisUp: Int? = nil
    ) {
        self.fleetRedisUp = fleetRedisUp
        self.cacheEntries = cacheEntries
        self.cacheCapacity = cacheCapacity
        self.heldMemory = heldMemory
        self.heldMemoryLimit = heldMemoryLimit
        self.process = process
        self.version = version
    }
}

/// The Prometheus text exposition (format 0.0.4) of the workers' summed words (`MetricsLayout`). Pure.
public enum MetricsExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ words: [UInt64], _ extras: MetricsExtras) -> [UInt8] {
        precondition(words.count == MetricsLayout.wordCount)
        var t = PrometheusText()
        typealias L = MetricsLayout

        t.family("etag_proxy_requests_total", "counter", "Answers sent to clients, by request method and status.")
        for (m, name) in L.methodNames.enumerated() {
            for s in 0..<L.statusSlots {
                let v = words[L.requests + m * L.statusSlots + s]
                if v > 0 { t.sample("etag_proxy_requests_total", [("method", name), ("code", String(s + 100))], v) }
            }
        }
        t.family(
            "etag_proxy_request_duration_seconds", "histogram",
            "From the request head's arrival to the end of the answer.")
        t.histogram("etag_proxy_request_duration_seconds", [], words, at: L.requestDuration)

        t.family(
            "etag_proxy_upstream_requests_total", "counter",
            "Requests sent upstream, by kind (forward, prefetch, refetch) and the upstream's status (error: no answer)."
        )
        for k in L.UpstreamKind.allCases {
            for s in 0...L.statusSlots {
                let v = words[L.upstreamRequests + k.rawValue * L.upstreamPerKind + s]
                guard v > 0 else { continue }
                let code = s == L.statusSlots ? "error" : String(s + 100)
                t.sample("etag_proxy_upstream_requests_total", [("kind", k.label), ("code", code)], v)
            }
        }
        t.family(
            "etag_proxy_upstream_duration_seconds", "histogram",
            "From sending a request upstream to the end of its answer (or its failure), by kind.")
        for k in L.UpstreamKind.allCases {
            t.histogram(
                "etag_proxy_upstream_duration_seconds", [("kind", k.label)], words, at: L.upstreamDuration(k))
        }

        t.family(
            "etag_proxy_cache_lookups_total", "counter",
            "GET/HEAD requests by the cache's part (RFC 9211 Cache-Status): hit, or why the upstream was asked.")
        for r in L.CacheLookupResult.allCases {
            t.sample("etag_proxy_cache_lookups_total", [("result", r.label)], words[L.cacheLookup(r)])
        }
        t.family("etag_proxy_not_modified_total", "counter", "304 answers sent, by where the tag came from.")
        t.sample(
            "etag_proxy_not_modified_total", [("source", "cache")], words[L.counter(.notModifiedFromCache)])
        t.sample(
            "etag_proxy_not_modified_total", [("source", "upstream")], words[L.counter(.notModifiedFromUpstream)])
        t.counter("etag_proxy_cache_stores_total", "ETags stored in the shared region.", words[L.counter(.cacheStores)])
        t.counter(
            "etag_proxy_cache_evictions_total", "Live entries evicted to make room.", words[L.counter(.cacheEvictions)])
        t.counter(
            "etag_proxy_cache_admissions_refused_total",
            "Stores refused by the admission filter (asked for less often than the entry they would evict).",
            words[L.counter(.cacheAdmissionsRefused)])
        t.counter(
            "etag_proxy_cache_invalidations_total", "URIs invalidated by successful writes (RFC 9111 §4.4).",
            words[L.counter(.cacheInvalidations)])
        t.counter(
            "etag_proxy_hashed_responses_total", "Response bodies hashed into an ETag.",
            words[L.counter(.hashedResponses)])
        t.gauge(
            "etag_proxy_cache_entries", "Live entries in the shared region (all processes sharing it).",
            Double(extras.cacheEntries))
        t.gauge("etag_proxy_cache_capacity", "Entries the shared region can hold.", Double(extras.cacheCapacity))
        t.gauge(
            "etag_proxy_held_memory_bytes",
            "Response bytes held in memory (bodies being tagged, answers queued for clients), workers' credit included.",
            Double(extras.heldMemory))
        t.gauge("etag_proxy_held_memory_limit_bytes", "limits.held_memory.", Double(extras.heldMemoryLimit))

        t.family(
            "etag_proxy_write_checks_total", "counter",
            "Writes in concurrency.methods by outcome; precondition_failed are lost updates prevented.")
        for r in L.WriteCheckResult.allCases {
            t.sample("etag_proxy_write_checks_total", [("result", r.label)], words[L.writeCheck(r)])
        }
        t.family(
            "etag_proxy_lease_wait_seconds", "histogram", "How long a write waited for its resource's write lease.")
        t.histogram("etag_proxy_lease_wait_seconds", [], words, at: L.leaseWait)
        t.counter(
            "etag_proxy_lease_timeouts_total", "Writes answered 503 after concurrency.lease_wait.",
            words[L.counter(.leaseTimeouts)])
        t.counter(
            "etag_proxy_refetch_pipelined_total",
            "Re-fetches sent right behind their PUT on its upstream connection and answered there (concurrency.pipeline_refetch).",
            words[L.counter(.refetchesPipelined)])

        if let up = extras.fleetRedisUp {
            t.gauge(
                "etag_proxy_fleet_redis_up",
                "1 while this replica is subscribed to the fleet's invalidations in Redis (fleet.redis), else 0.",
                Double(up))
            t.family(
                "etag_proxy_fleet_lease_requests_total", "counter",
                "Fleet write lease requests to Redis by result (expired: a write outlived its lease).")
            for r in L.FleetLeaseResult.allCases {
                t.sample("etag_proxy_fleet_lease_requests_total", [("result", r.label)], words[L.fleetLease(r)])
            }
            t.family(
                "etag_proxy_fleet_invalidations_total", "counter",
                "Fleet invalidations: published by this replica, received from others, or unsent (Redis unreachable).")
            for d in L.FleetInvalidationDirection.allCases {
                t.sample(
                    "etag_proxy_fleet_invalidations_total", [("direction", d.label)], words[L.fleetInvalidation(d)])
            }
        }

        t.family("etag_proxy_connections", "gauge", "Open connections: clients, and upstream ones idle or busy.")
        let upstream = words[L.level(.upstreamConnections)]
        let idle = min(words[L.level(.upstreamIdle)], upstream)
        t.sample("etag_proxy_connections", [("side", "client")], words[L.level(.clientConnections)])
        t.sample("etag_proxy_connections", [("side", "upstream_idle")], idle)
        t.sample("etag_proxy_connections", [("side", "upstream_busy")], upstream - idle)

        t.family(
            "etag_proxy_rejected_requests_total", "counter",
            "Requests refused before reaching the upstream because of what they were (malformed, too large, too slow)."
        )
        for s in 0..<L.statusSlots {
            let v = words[L.rejected + s]
            if v > 0 { t.sample("etag_proxy_rejected_requests_total", [("code", String(s + 100))], v) }
        }
        t.counter(
            "etag_proxy_access_log_dropped_total",
            "Access log lines dropped because the log output was not keeping up.",
            words[L.counter(.accessLogDropped)])
        t.family(
            "etag_proxy_tls_handshakes_total", "counter",
            "TLS handshakes by side (listener: clients, upstream: the proxy's own) and result (full, resumed, failed).")
        for (side, first) in [("listener", L.Counter.listenerTLSFull), ("upstream", .upstreamTLSFull)] {
            for (i, result) in ["full", "resumed", "failed"].enumerated() {
                t.sample(
                    "etag_proxy_tls_handshakes_total", [("side", side), ("result", result)],
                    words[L.counter(first) + i])
            }
        }
        t.family("etag_proxy_build_info", "gauge", "The running build (always 1).")
        t.sample("etag_proxy_build_info", [("version", extras.version)], UInt64(1))

        let p = extras.process
        t.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", p.startTime)
        t.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", Double(p.residentBytes))
        t.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", Double(p.virtualBytes))
        t.gauge("process_open_fds", "Number of open file descriptors.", Double(p.openFDs))
        t.gauge("process_max_fds", "Maximum number of open file descriptors.", Double(p.maxFDs))
        t.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        t.sample("process_cpu_seconds_total", [], p.cpuSeconds)
        return t.bytes
    }
}

/// Writes Prometheus text exposition lines (`# HELP`, `# TYPE`, samples with escaped label values).
struct PrometheusText {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(16 * 1024) }

    mutating func family(_ name: String, _ type: String, _ help: String) {
        line("# HELP \(name) \(help)")
        line("# TYPE \(name) \(type)")
    }

    mutating func counter(_ name: String, _ help: String, _ v: UInt64) {
        family(name, "counter", help)
        sample(name, [], v)
    }

    mutating func gauge(_ name: String, _ help: String, _ v: Double) {
        family(name, "gauge", help)
        sample(name, [], v)
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ v: UInt64) {
        line(name + Self.labelSet(labels) + " " + String(v))
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ v: Double) {
        line(name + Self.labelSet(labels) + " " + Self.number(v))
    }

    /// A histogram's cumulative buckets, sum and count from its words (see `MetricsLayout.histogramWords`).
    mutating func histogram(_ name: String, _ labels: [(String, String)], _ words: [UInt64], at base: Int) {
        let bounds = MetricsLayout.durationBounds
        var cumulative: UInt64 = 0
        for (i, bound) in bounds.enumerated() {
            cumulative += words[base + i]
            sample(name + "_bucket", labels + [("le", Self.number(bound))], cumulative)
        }
        cumulative += words[base + bounds.count]
        sample(name + "_bucket", labels + [("le", "+Inf")], cumulative)
        sample(name + "_sum", labels, Double(words[base + bounds.count + 1]) / 1e9)
        sample(name + "_count", labels, words[base + bounds.count + 2])
    }

    private mutating func line(_ s: String) {
        bytes.append(contentsOf: s.utf8)
        bytes.append(10)
    }

    static func labelSet(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// Label values escape backslash, double quote and line feed (the exposition format's rules).
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// A float as Prometheus parsers read it (`Double.description`: `0.0001`, `2.5`, `1e-05`).
    static func number(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return v.description
    }
}

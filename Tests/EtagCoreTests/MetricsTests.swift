@testable import EtagCore
import EtagHTTP
import Testing

@Suite("Metrics: layout, Prometheus exposition, readiness, admin routes (pure)")
struct MetricsTests {
    typealias L = MetricsLayout

    @Test func theLiteralCountsAreTheListsCounts() {
        #expect(L.methodCount == L.methodNames.count)
        #expect(L.boundCount == L.durationBounds.count)
        #expect(L.kindCount == L.UpstreamKind.allCases.count)
        #expect(L.writeChecks - L.cacheLookups == L.CacheLookupResult.allCases.count)
        #expect(L.leaseWait - L.writeChecks == L.WriteCheckResult.allCases.count)
        #expect(L.levels - L.counters == L.Counter.allCases.count)
        #expect(L.fleetLeases - L.levels == L.Level.allCases.count)
        #expect(L.fleetInvalidations - L.fleetLeases == L.FleetLeaseResult.allCases.count)
        #expect(L.wordCount - L.fleetInvalidations == L.FleetInvalidationDirection.allCases.count)
        for (i, bound) in L.durationBounds.enumerated() {
            let ns = UInt64(bound * 1e9)
            #expect(L.bucket(ns: ns) == i)
            #expect(L.bucket(ns: ns + 1) == i + 1)
        }
    }

    @Test func everyIndexIsInsideTheWordsAndDistinct() {
        let methods: [HTTPMethod] = [.get, .head, .post, .put, .patch, .delete, .options, .trace, .connect, .other]
        var all: [Int] = []
        for m in methods {
            for s in [100, 200, 304, 499, 599] { all.append(L.request(method: m, status: s)) }
        }
        for k in L.UpstreamKind.allCases {
            all += [L.upstreamRequest(k, status: 200), L.upstreamRequest(k, status: nil), L.upstreamDuration(k)]
        }
        all += L.CacheLookupResult.allCases.map(L.cacheLookup)
        all += L.WriteCheckResult.allCases.map(L.writeCheck)
        all += L.Counter.allCases.map(L.counter)
        all += L.Level.allCases.map(L.level)
        all += L.FleetLeaseResult.allCases.map(L.fleetLease)
        all += L.FleetInvalidationDirection.allCases.map(L.fleetInvalidation)
        all += [L.requestDuration, L.leaseWait, L.rejected(status: 400)]
        #expect(Set(all).count == all.count)
        #expect(all.allSatisfy { $0 >= 0 && $0 < L.wordCount })
        #expect(L.upstreamRequest(.forward, status: 42) == L.upstreamRequest(.forward, status: nil))
    }

    @Test(arguments: [
        (UInt64(0), 0), (100_000, 0), (100_001, 1), (1_000_000, 3), (1_000_001, 4), (10_000_000_000, 15),
        (10_000_000_001, 16),
    ])
    func bucketOfADuration(ns: UInt64, bucket: Int) {
        #expect(L.bucket(ns: ns) == bucket)
    }

    func render(_ change: (inout [UInt64]) -> Void) -> String {
        var words = [UInt64](repeating: 0, count: L.wordCount)
        change(&words)
        var p = ProcessStats()
        p.startTime = 1_700_000_000.5
        p.cpuSeconds = 1.25
        p.residentBytes = 4096
        let extras = MetricsExtras(cacheEntries: 3, cacheCapacity: 7000, process: p, version: "1.2\"x")
        return String(decoding: MetricsExposition.render(words, extras), as: UTF8.self)
    }

    @Test func samplesCarryTheirLabelsAndHistogramsAreCumulative() {
        let text = render { w in
            w[L.request(method: .get, status: 304)] = 5
            w[L.upstreamRequest(.prefetch, status: nil)] = 2
            w[L.writeCheck(.preconditionFailed)] = 2
            w[L.requestDuration + 0] = 3  // ≤ 100 µs
            w[L.requestDuration + 2] = 1  // ≤ 500 µs
            w[L.requestDuration + L.durationBounds.count + 1] = 1_500_000  // sum ns
            w[L.requestDuration + L.durationBounds.count + 2] = 4
            w[L.level(.upstreamConnections)] = 5
            w[L.level(.upstreamIdle)] = 2
        }
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            "# TYPE etag_proxy_requests_total counter",
            "etag_proxy_requests_total{method=\"GET\",code=\"304\"} 5",
            "etag_proxy_upstream_requests_total{kind=\"prefetch\",code=\"error\"} 2",
            "etag_proxy_write_checks_total{result=\"precondition_failed\"} 2",
            "etag_proxy_write_checks_total{result=\"passed\"} 0",
            "etag_proxy_request_duration_seconds_bucket{le=\"0.0001\"} 3",
            "etag_proxy_request_duration_seconds_bucket{le=\"0.00025\"} 3",
            "etag_proxy_request_duration_seconds_bucket{le=\"0.0005\"} 4",
            "etag_proxy_request_duration_seconds_bucket{le=\"+Inf\"} 4",
            "etag_proxy_request_duration_seconds_sum 0.0015",
            "etag_proxy_request_duration_seconds_count 4",
            "etag_proxy_upstream_duration_seconds_count{kind=\"refetch\"} 0",
            "etag_proxy_connections{side=\"upstream_busy\"} 3",
            "etag_proxy_connections{side=\"upstream_idle\"} 2",
            "etag_proxy_cache_entries 3",
            "etag_proxy_cache_capacity 7000",
            "etag_proxy_build_info{version=\"1.2\\\"x\"} 1",
            "process_start_time_seconds 1700000000.5",
            "process_cpu_seconds_total 1.25",
            "process_resident_memory_bytes 4096",
        ] {
            #expect(lines.contains(expected), "missing: \(expected)")
        }
        // Label sets with no traffic are left out; families are always declared.
        #expect(!text.contains("code=\"200\""))
        #expect(text.contains("# TYPE etag_proxy_rejected_requests_total counter"))
    }

    @Test func procSelfStatIsParsedPastACommandNameWithSpacesAndParentheses() {
        let stat =
            "4242 (etag (proxy) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 3 0 1000 123456789 2500 "
            + "18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0"
        var p = ProcessStats()
        let parsed = p.parseStat(stat, ticksPerSecond: 100, pageSize: 4096, bootTime: 1_700_000_000)
        #expect(parsed)
        #expect(p.cpuSeconds == 2.0)
        #expect(p.startTime == 1_700_000_010)
        #expect(p.virtualBytes == 123_456_789)
        #expect(p.residentBytes == 2500 * 4096)
        #expect(ProcessStats.bootTime("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n") == 1_700_000_000)
    }

    // MARK: readiness

    func decide(
        draining: Bool = false, _ e: Readiness.Evidence, now: UInt64, probed: Bool = false
    ) -> Readiness.Verdict {
        Readiness.decide(
            draining: draining, evidence: e, nowMs: now, unreadyAfterMs: 10_000, probed: probed,
            failure: { _ in "connection refused" })
    }

    @Test func readinessTable() {
        let reached = Readiness.Evidence(reachedMs: 50_000)
        #expect(decide(reached, now: 55_000) == .ready)
        #expect(decide(draining: true, reached, now: 55_000) == .notReady("draining: the proxy is shutting down"))
        // Nothing recent: probe first.
        #expect(decide(reached, now: 70_000) == .probe)
        #expect(decide(Readiness.Evidence(), now: 70_000) == .probe)
        let neverReached = Readiness.Evidence(failingSinceMs: 69_000, failureCode: -111)
        #expect(
            decide(neverReached, now: 70_000, probed: true)
                == .notReady("the upstream has not been reached yet: connection refused"))
        // Failing, within the grace: still ready; past it: 503 with the reason.
        let failing = Readiness.Evidence(reachedMs: 50_000, failingSinceMs: 52_000, failureCode: -111)
        #expect(decide(failing, now: 55_000) == .probe)
        #expect(decide(failing, now: 55_000, probed: true) == .ready)
        #expect(
            decide(failing, now: 65_000, probed: true)
                == .notReady("the upstream has been unreachable for 13s: connection refused"))
    }

    @Test func evidenceOfSeveralWorkersCombines() {
        // One worker failed, another reached the upstream since: not failing.
        let a = Readiness.Evidence(reachedMs: 10, failingSinceMs: 20, failureCode: -111)
        let b = Readiness.Evidence(reachedMs: 30)
        #expect(Readiness.Evidence.combine([a, b]) == Readiness.Evidence(reachedMs: 30))
        // Both failing since their last reach: the earliest failure counts.
        let c = Readiness.Evidence(reachedMs: 5, failingSinceMs: 40, failureCode: -110)
        #expect(
            Readiness.Evidence.combine([a, c])
                == Readiness.Evidence(reachedMs: 10, failingSinceMs: 20, failureCode: -110))
    }

    // MARK: admin routes

    @Test func adminRoutes() {
        #expect(AdminRoutes.route(method: .get, target: "/healthz") == .serve(.healthz, headOnly: false))
        #expect(AdminRoutes.route(method: .head, target: "/readyz") == .serve(.readyz, headOnly: true))
        #expect(AdminRoutes.route(method: .get, target: "/metrics?x=1") == .serve(.metrics, headOnly: false))
        #expect(AdminRoutes.route(method: .post, target: "/metrics") == .methodNotAllowed)
        #expect(AdminRoutes.route(method: .get, target: "/persons/1") == .notFound)
        #expect(AdminRoutes.route(method: .get, target: "/metrics/") == .notFound)
    }
}

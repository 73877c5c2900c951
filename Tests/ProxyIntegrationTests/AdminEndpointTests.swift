import EtagCore
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The admin listener: liveness, readiness and Prometheus metrics, on a port of its own, never forwarded.
@Suite("Admin endpoint: /healthz, /readyz, /metrics (parsed by the Prometheus client)")
struct AdminEndpointTests {
    func get(_ port: Int, _ path: String, _ extra: [String] = []) throws -> (status: Int, body: String) {
        let r = try runCurl(["-s", "-o", "-", "-w", "\n%{http_code}"] + extra + ["http://127.0.0.1:\(port)\(path)"])
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test func healthzAndUnknownPathsAreAnsweredByTheProxyItself() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        #expect(proxy.server.adminPort > 0)
        let h = try get(proxy.server.adminPort, "/healthz")
        #expect(h.status == 200)
        #expect(h.body == "ok\n")
        #expect(try get(proxy.server.adminPort, "/persons/1").status == 404)
        #expect(try get(proxy.server.adminPort, "/metrics", ["-X", "POST"]).status == 405)
        #expect(up.requests.isEmpty, "nothing reaches the upstream")
        // On the proxy port the same paths are the API's.
        #expect(try proxy.request("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
        #expect(up.requests.map(\.target) == ["/healthz"])
    }

    @Test func countersMatchTheRequestsSent() throws {
        let store = RecordingStore(["/persons/1": "{\"name\":\"Ada\"}"])
        let up = try TestUpstream { store.handle($0) }
        let proxy = try ProxyHarness(upstream: up) { $0.concurrency.enforceIfMatch = true }
        defer { proxy.stop() }
        let tag = try #require(try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\n\r\n").header("ETag"))
        for _ in 0..<5 {
            let r = try proxy.request("GET /persons/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \(tag)\r\n\r\n")
            #expect(r.status == 304)
        }
        let body = "{\"name\":\"Bob\"}"
        for _ in 0..<2 {
            let r = try proxy.request(
                "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nIf-Match: \"0000000000000000000000000000000000000000\"\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(r.status == 412)
        }
        let r428 = try proxy.request(
            "PUT /persons/1 HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(r428.status == 428)
        #expect(try proxy.request("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n").status == 400)

        let m = try PrometheusScrape(text: try get(proxy.server.adminPort, "/metrics").body)
        #expect(m.value("etag_proxy_not_modified_total", ["source": "cache"]) == 5)
        #expect(m.value("etag_proxy_not_modified_total", ["source": "upstream"]) == 0)
        #expect(m.value("etag_proxy_requests_total", ["method": "GET", "code": "304"]) == 5)
        #expect(m.value("etag_proxy_requests_total", ["method": "GET", "code": "200"]) == 1)
        #expect(m.value("etag_proxy_requests_total", ["method": "PUT", "code": "412"]) == 2)
        #expect(m.value("etag_proxy_requests_total", ["method": "PUT", "code": "428"]) == 1)
        #expect(m.value("etag_proxy_requests_total", ["method": "other", "code": "400"]) == 1)
        #expect(m.value("etag_proxy_rejected_requests_total", ["code": "400"]) == 1)
        #expect(m.value("etag_proxy_write_checks_total", ["result": "precondition_failed"]) == 2)
        #expect(m.value("etag_proxy_write_checks_total", ["result": "precondition_required"]) == 1)
        #expect(m.value("etag_proxy_write_checks_total", ["result": "passed"]) == 0)
        #expect(m.value("etag_proxy_cache_lookups_total", ["result": "hit"]) == 5)
        #expect(m.value("etag_proxy_cache_lookups_total", ["result": "miss"]) == 1)
        #expect(m.value("etag_proxy_upstream_requests_total", ["kind": "forward", "code": "200"]) == 1)
        #expect(m.value("etag_proxy_upstream_requests_total", ["kind": "prefetch", "code": "200"]) == 2)
        #expect(m.value("etag_proxy_upstream_duration_seconds_count", ["kind": "prefetch"]) == 2)
        #expect(m.value("etag_proxy_request_duration_seconds_count") == 10)
        #expect(m.value("etag_proxy_request_duration_seconds_bucket", ["le": "+Inf"]) == 10)
        #expect(m.value("etag_proxy_lease_wait_seconds_count") == 2)
        #expect(m.value("etag_proxy_cache_stores_total") == 1)
        #expect(m.value("etag_proxy_cache_entries") == 1)
        #expect((m.value("etag_proxy_cache_capacity") ?? 0) > 1000)
        #expect((m.value("etag_proxy_connections", ["side": "upstream_idle"]) ?? 0) >= 1)
        #expect(m.value("etag_proxy_build_info", ["version": EtagProxyVersion.string]) == 1)
        #expect((m.value("process_open_fds") ?? 0) > 0)
        #expect((m.value("process_resident_memory_bytes") ?? 0) > 1_000_000)
        #expect((m.value("process_start_time_seconds") ?? 0) > 1_600_000_000)
        #expect(m.value("process_cpu_seconds_total") != nil)
    }

    /// A loopback "upstream" that only accepts connections: what readiness probes.
    func listener(port: Int = 0) throws -> (fd: Int32, port: Int) { try Sockets.listen(port: port) }

    @Test func readinessFollowsTheUpstreamAndRecoversWithoutTraffic() throws {
        var (fd, port) = try listener()
        let config: (inout ProxyConfig) -> Void = {
            $0.upstream = UpstreamURL(host: "127.0.0.1", port: port)
            $0.admin.unreadyAfter = 300
            $0.timeouts.connect = 500
        }
        let proxy = try ProxyHarness(upstream: try TestUpstream(), configure: config)
        defer { proxy.stop() }
        let admin = proxy.server.adminPort
        #expect(try get(admin, "/readyz").status == 200)
        close(fd)
        // Down, but reached less than admin.unready_after ago: still ready; then the probe's first failure starts
        // the run of failures, which is not yet admin.unready_after long.
        #expect(try get(admin, "/readyz").status == 200)
        Thread.sleep(forTimeInterval: 0.4)
        #expect(try get(admin, "/readyz").status == 200)
        Thread.sleep(forTimeInterval: 0.4)
        let down = try get(admin, "/readyz")
        #expect(down.status == 503)
        #expect(down.body.contains("unreachable"), "\(down.body)")
        #expect(down.body.contains("connection refused"), "\(down.body)")
        #expect(try get(admin, "/healthz").status == 200, "alive while not ready")
        (fd, _) = try listener(port: port)
        defer { close(fd) }
        #expect(try get(admin, "/readyz").status == 200)
    }

    @Test func readinessIs503WhileDraining() throws {
        let up = try TestUpstream { req in
            req.target == "/slow" ? .delay(1.5, TestUpstream.echo(req)) : TestUpstream.echo(req)
        }
        let proxy = try ProxyHarness(upstream: up)
        defer { proxy.stop() }
        let admin = proxy.server.adminPort
        #expect(try get(admin, "/readyz").status == 200)
        let slow = try proxy.connect()
        defer { slow.close() }
        slow.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.3)
        proxy.server.stop()
        let r = try get(admin, "/readyz")
        #expect(r.status == 503)
        #expect(r.body.contains("draining"))
        #expect(try get(admin, "/healthz").status == 200)
        #expect(slow.response()?.status == 200, "the request in flight is finished")
    }

    @Test func theAdminListenerIsNotBoundByTheClientLimits() throws {
        let up = try TestUpstream()
        let proxy = try ProxyHarness(upstream: up) {
            $0.workers = 1
            $0.limits.maxConnections = 1
        }
        defer { proxy.stop() }
        let held = try proxy.connect()
        defer { held.close() }
        held.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(held.response()?.status == 200)
        // The proxy port is full (a second client is closed at once); the admin port answers.
        let refused = try proxy.connect(timeout: 2)
        refused.send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(refused.response() == nil)
        refused.close()
        #expect(try get(proxy.server.adminPort, "/healthz").status == 200)
        #expect(try get(proxy.server.adminPort, "/metrics").status == 200)
    }
}

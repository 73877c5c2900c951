import EtagCore
import Foundation
import Testing
@testable import EtagConfig

@Suite("Config file, environment and flags")
struct ConfigLoaderTests {
    func load(_ yaml: String, env: [String: String] = [:]) throws -> ProxyConfig {
        var c = ProxyConfig()
        try ConfigLoader.apply(yaml: yaml, source: "test.yaml", to: &c)
        try ConfigLoader.applyEnvironment(env, to: &c)
        return c
    }

    func error(_ yaml: String) -> ConfigError? {
        do {
            _ = try load(yaml)
            return nil
        } catch let e as ConfigError {
            return e
        } catch {
            return nil
        }
    }

    @Test func theShippedDefaultFileLoads() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/etag-proxy.yaml").path
        let c = try ConfigLoader.load(file: file, environment: [:])
        #expect(c.timeouts.upstream == 60_000)
        #expect(c.cache.ttl == 30_000)
        #expect(c.concurrency.enforceIfMatch == false)
    }

    @Test func keysAreRead() throws {
        let c = try load(
            """
            listen: 0.0.0.0:8081
            upstream: http://api:9001/base
            workers: 3
            timeouts:
              upstream: 250ms
            limits:
              max_body_size: 10MiB
            cache:
              ttl: 5m
            concurrency:
              enforce_if_match: true
            """)
        #expect(c.listen == ListenAddress(host: "0.0.0.0", port: 8081))
        #expect(c.upstream.host == "api" && c.upstream.port == 9001 && c.upstream.basePath == "/base")
        #expect(c.workers == 3)
        #expect(c.timeouts.upstream == 250)
        #expect(c.limits.maxBodySize == 10 * 1024 * 1024)
        #expect(c.cache.ttl == 300_000)
        #expect(c.concurrency.enforceIfMatch)
        #expect(try load("workers: auto").workers == nil)
    }

    @Test func errorsNameTheKeyAndLine() throws {
        let e = try #require(error("listen: 127.0.0.1:8080\ntimeouts:\n  upstream: 30x\n"))
        #expect(e.key == "timeouts.upstream")
        #expect(e.line == 3)
        #expect(e.description.contains("test.yaml:3: timeouts.upstream"))
        #expect(error("workers: many")?.key == "workers")
        #expect(error("concurrency:\n  enforce_if_match: maybe\n")?.key == "concurrency.enforce_if_match")
        #expect(error("upstream: ftp://x")?.key == "upstream")
        #expect(error("etag:\n  upstream: merge\n")?.message == "'merge' is not replace or keep")
        #expect(error("concurrency:\n  etag_after_write: later\n")?.key == "concurrency.etag_after_write")
        #expect(try load("etag:\n  upstream: KEEP\nconcurrency:\n  etag_after_write: body\n").etag.upstream == .keep)
        let many = (1...65).map { "x-\($0)" }.joined(separator: ", ")
        #expect(error("cache:\n  key_headers: [\(many)]\n")?.key == "cache.key_headers")
        #expect(
            try load("cache:\n  key_headers: [authorization, x-tenant]\n").cache.keyHeaders == [
                "authorization", "x-tenant",
            ])
    }

    @Test func unknownKeysAreErrors() throws {
        let e = try #require(error("timeouts:\n  upstrem: 5s\n"))
        #expect(e.key == "timeouts.upstrem")
        #expect(e.line == 2)
        #expect(error("colour: blue")?.message.contains("unknown key") == true)
    }

    @Test func invalidYAMLIsReported() {
        #expect(error("listen: [unclosed\n") != nil)
        #expect(error("- a\n- b\n")?.message.contains("mapping") == true)
    }

    @Test func environmentOverridesTheFile() throws {
        let c = try load(
            "timeouts:\n  upstream: 5s\n", env: ["ETAG_PROXY_TIMEOUTS_UPSTREAM": "7s", "ETAG_PROXY_WORKERS": "2"])
        #expect(c.timeouts.upstream == 7000)
        #expect(c.workers == 2)
        #expect(throws: ConfigError.self) { try load("", env: ["ETAG_PROXY_CACHE_TTL": "soon"]) }
    }

    @Test func flagsOverrideEverything() throws {
        var c = try load("listen: 127.0.0.1:1\n")
        try ConfigLoader.applyFlags(listen: "127.0.0.1:2", upstream: "http://u:3", workers: nil, to: &c)
        #expect(c.listen.port == 2)
        #expect(c.upstream.port == 3)
    }

    @Test func everyKeyHasAnEnvironmentName() {
        #expect(
            ConfigKeys.all.first { $0.path == "limits.max_body_size" }?.environmentName
                == "ETAG_PROXY_LIMITS_MAX_BODY_SIZE")
        #expect(Set(ConfigKeys.all.map(\.path)).count == ConfigKeys.all.count)
    }

    @Test func everyKeyIsDocumentedInTheReadmeAndTheShippedFileParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for key in ConfigKeys.all {
            #expect(readme.contains("| `\(key.path)` |"), "README documents \(key.path)")
        }
    }

    @Test func theFleetIsReadAndItsPasswordComesFromTheEnvironmentWithoutShowing() throws {
        let c = try load(
            """
            fleet:
              redis: redis://:fromfile@redis.internal:7000/3
              name: orders
              on_redis_down: local
            timeouts:
              redis: 250ms
            """, env: ["ETAG_PROXY_FLEET_REDIS_PASSWORD": "fromenv"])
        #expect(c.fleet.redis == RedisEndpoint(host: "redis.internal", port: 7000, db: 3, password: "fromfile"))
        #expect(c.fleet.password == "fromenv")
        #expect(c.fleet.name == "orders")
        #expect(c.fleet.onRedisDown == .local)
        #expect(c.timeouts.redis == 250)
        let shown = ConfigKeys.all.map { "\($0.path)=\($0.render(c))" }.joined(separator: "\n")
        #expect(!shown.contains("fromfile") && !shown.contains("fromenv"), "\(shown)")
        #expect(shown.contains("fleet.redis=redis://:***@redis.internal:7000/3"))
        #expect(shown.contains("fleet.redis_password=(set)"))
        #expect(try load("fleet:\n  redis: off\n").fleet.enabled == false)
        #expect(ProxyConfig().fleet.enabled == false)
        let bad = error("fleet:\n  redis: redis://:secret@\n")
        #expect(bad != nil)
        #expect(!"\(bad.map { "\($0)" } ?? "")".contains("secret"), "the error hides the password")
        #expect(error("fleet:\n  name: a/b\n") != nil)
        #expect(error("fleet:\n  on_redis_down: maybe\n") != nil)
    }
}

import EtagCore
import Foundation
import Testing
import Yams

@testable import EtagConfig

/// The example deployments stay in step with the proxy: their config loads, their probes hit the admin endpoints.
@Suite("deploy/: compose and Kubernetes examples")
struct DeployFilesTests {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func documents(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    @Test func theKubernetesConfigMapLoadsAndTheProbesAskTheAdminListener() throws {
        let docs = try documents("deploy/kubernetes.yaml")
        let map = try #require(docs.first { $0["kind"] as? String == "ConfigMap" })
        let yaml = try #require((map["data"] as? [String: Any])?["etag-proxy.yaml"] as? String)
        var config = ProxyConfig()
        try ConfigLoader.apply(yaml: yaml, source: "kubernetes.yaml", to: &config)
        #expect(config.admin.listen == ListenAddress(host: "0.0.0.0", port: 9901))
        #expect(config.accessLogFormat == .json)
        let deployment = try #require(docs.first { $0["kind"] as? String == "Deployment" })
        let spec = (deployment["spec"] as? [String: Any])?["template"] as? [String: Any]
        let containers = ((spec?["spec"] as? [String: Any])?["containers"] as? [[String: Any]]) ?? []
        let c = try #require(containers.first)
        let live = (c["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        let ready = (c["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        #expect(live?["path"] as? String == "/healthz")
        #expect(ready?["path"] as? String == "/readyz")
        let ports = (c["ports"] as? [[String: Any]]) ?? []
        #expect(ports.contains { $0["name"] as? String == "admin" && $0["containerPort"] as? Int == 9901 })
        #expect(live?["port"] as? String == "admin")
        #expect(c["resources"] != nil)
    }

    @Test func theComposeEnvironmentNamesRealKeys() throws {
        let compose = try #require(try documents("deploy/compose.yaml").first)
        let proxy = try #require((compose["services"] as? [String: Any])?["proxy"] as? [String: Any])
        let env = try #require(proxy["environment"] as? [String: Any]).mapValues { "\($0)" }
        var config = ProxyConfig()
        try ConfigLoader.applyEnvironment(env, to: &config)
        #expect(config.upstream.host == "api")
    }
}

import EtagCore
import EtagHTTP
import Foundation
import Testing
@testable import EtagConfig

/// The key table is the one source of each key's default and meaning: the README shows it, and every default it
/// shows loads back as the default value.
@Suite("Config key table")
struct ConfigKeyTableTests {
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("README.md")

    /// The rows of the README's configuration table (after its `| key | default | meaning |` header).
    func readmeRows() throws -> [String] {
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.firstIndex(of: "| key | default | meaning |") else { return [] }
        return Array(lines[(header + 2)...].prefix { $0.hasPrefix("| ") })
    }

    @Test func theReadmeTableIsTheKeyTable() throws {
        let expected = ConfigKeys.all.map(\.markdownRow)
        let actual = try readmeRows()
        let missing = expected.filter { !actual.contains($0) }
        let extra = actual.filter { !expected.contains($0) }
        #expect(
            missing.isEmpty && extra.isEmpty,
            "README rows to write:\n\(missing.joined(separator: "\n"))\nto remove:\n\(extra.joined(separator: "\n"))")
        #expect(actual == expected, "the README lists the keys in another order than ConfigKeys.all")
    }

    @Test func everyShownDefaultLoadsAsTheDefault() throws {
        for key in ConfigKeys.all where !key.defaultText.hasPrefix("(") {
            var c = ProxyConfig()
            let text = key.acceptsList ? String(key.defaultText.dropFirst().dropLast()) : key.defaultText
            #expect(key.apply(&c, text) == nil, "\(key.path): default '\(key.defaultText)' does not parse")
            #expect(c == ProxyConfig(), "\(key.path): default '\(key.defaultText)' loads as another value")
        }
    }

    @Test func aValueRendersAsWhatLoadsIt() throws {
        var c = ProxyConfig()
        try ConfigLoader.apply(
            yaml: """
                timeouts: {upstream: 250ms, keepalive: 2m}
                limits: {buffer_size: 65536, max_body_size: 1000}
                concurrency: {methods: [post, PUT]}
                """, source: "test.yaml", to: &c)
        func shown(_ path: String) -> String? { ConfigKeys.all.first { $0.path == path }?.render(c) }
        #expect(shown("timeouts.upstream") == "250ms")
        #expect(shown("timeouts.keepalive") == "120s")
        #expect(shown("limits.buffer_size") == "64KiB")
        #expect(shown("limits.max_body_size") == "1000")
        #expect(c.concurrency.methods == [.post, .put])
        #expect(shown("concurrency.methods") == "[POST, PUT]")
    }

    @Test func aMethodOutsideTheCheckableOnesIsAnError() {
        var c = ProxyConfig()
        #expect(throws: ConfigError.self) {
            try ConfigLoader.apply(yaml: "concurrency: {methods: [PUT, GET]}", source: "t.yaml", to: &c)
        }
    }
}

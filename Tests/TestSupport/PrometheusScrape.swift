import Foundation

/// `/metrics` text parsed by the Prometheus Python client's own parser (`prometheus_client.parser`), so the
/// tests check the exposition a real scraper reads. Samples keyed `name{label=value,…}` (labels sorted).
public struct PrometheusScrape {
    public let samples: [String: Double]

    static let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):
            for s in family.samples:
                labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
                out[s.name + "{" + labels + "}"] = s.value
        print(json.dumps(out))
        """

    /// - Throws: when the parser rejects the text.
    public init(text: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try runProcess("/usr/bin/env", ["python3", "-c", Self.script, file.path])
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Double]
        else { throw TestError("prometheus_client rejected the exposition: \(r.err)") }
        samples = json
    }

    /// The sample `name{labels}` (labels as `k=v` in any order), or nil.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let key =
            name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
        return samples[key]
    }
}

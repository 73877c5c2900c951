import EtagCore
import Foundation
import Yams

/// A config problem, naming the key and, for a file, the line.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public var line: Int?
    public var key: String
    public var message: String

    public init(source: String, line: Int?, key: String, message: String) {
        self.source = source
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        let loc = line.map { "\(source):\($0)" } ?? source
        return key.isEmpty ? "\(loc): \(message)" : "\(loc): \(key): \(message)"
    }
}

/// Builds a `ProxyConfig` from defaults, then a YAML file, then `ETAG_PROXY_…` environment variables.
/// Every key is listed in `ConfigKeys.all`; an unknown key is an error, not a silent no-op.
public enum ConfigLoader {
    /// Loads `file` (when given) and the environment on top of the defaults.
    /// - Parameter sources: filled with where each key that is not a default got its value.
    /// - Throws: `ConfigError` naming the first bad key.
    public static func load(
        file: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        sources: ConfigSources? = nil
    )
        throws -> ProxyConfig
    {
        var config = ProxyConfig()
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                let reason = String(cString: strerror(errno))
                throw ConfigError(source: file, line: nil, key: "", message: "cannot read the file: \(reason)")
            }
            try apply(yaml: String(decoding: data, as: UTF8.self), source: file, to: &config, sources: sources)
        }
        try applyEnvironment(environment, to: &config, sources: sources)
        return config
    }

    /// Applies YAML text to `config`.
    public static func apply(
        yaml: String, source: String, to config: inout ProxyConfig, sources: ConfigSources? = nil
    ) throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(source: source, line: yamlLine(error), key: "", message: "not valid YAML: \(error)")
        }
        guard let root else { return }  // an empty file: all defaults
        guard case .mapping(let mapping) = root else {
            throw ConfigError(
                source: source, line: root.mark?.line, key: "", message: "the top level must be a mapping")
        }
        try walk(mapping, prefix: "", source: source, into: &config, sources: sources)
    }

    private static func walk(
        _ mapping: Node.Mapping, prefix: String, source: String, into config: inout ProxyConfig,
        sources: ConfigSources?
    )
        throws
    {
        for (k, v) in mapping {
            guard let name = k.string else {
                throw ConfigError(source: source, line: k.mark?.line, key: prefix, message: "keys must be strings")
            }
            let path = prefix.isEmpty ? name : "\(prefix).\(name)"
            switch v {
            case .mapping(let inner):
                guard ConfigKeys.all.contains(where: { $0.path.hasPrefix(path + ".") }) else {
                    throw ConfigError(source: source, line: k.mark?.line, key: path, message: unknownKey(path))
                }
                try walk(inner, prefix: path, source: source, into: &config, sources: sources)
            case .scalar(let scalar):
                let path = ConfigKeys.aliases[path] ?? path
                guard let key = ConfigKeys.all.first(where: { $0.path == path }) else {
                    throw ConfigError(source: source, line: k.mark?.line, key: path, message: unknownKey(path))
                }
                if let problem = key.apply(&config, scalar.string) {
                    throw ConfigError(source: source, line: v.mark?.line ?? k.mark?.line, key: path, message: problem)
                }
                sources?.set(path, "\(source):\(k.mark?.line ?? 0)")
            case .sequence(let seq) where ConfigKeys.all.contains(where: { $0.path == path && $0.acceptsList }):
                let key = ConfigKeys.all.first { $0.path == path }!
                let items = seq.map { $0.string ?? "" }
                if let problem = key.apply(&config, items.joined(separator: ",")) {
                    throw ConfigError(source: source, line: v.mark?.line ?? k.mark?.line, key: path, message: problem)
                }
                sources?.set(path, "\(source):\(k.mark?.line ?? 0)")
            default:
                throw ConfigError(source: source, line: k.mark?.line, key: path, message: "must be a single value")
            }
        }
    }

    /// Variables with the `ETAG_PROXY_` prefix that are not config keys but are read elsewhere.
    public static let otherVariables: Set<String> = []

    /// `ETAG_PROXY_TIMEOUTS_UPSTREAM=5s` sets `timeouts.upstream`. A variable with the prefix that names no key
    /// is an error (a typo would otherwise be ignored silently), with the nearest name as a suggestion.
    public static func applyEnvironment(
        _ env: [String: String], to config: inout ProxyConfig, sources: ConfigSources? = nil
    ) throws {
        var env = env
        for (alias, path) in ConfigKeys.aliases {
            let name = "ETAG_PROXY_" + alias.uppercased().replacingOccurrences(of: ".", with: "_")
            guard let v = env.removeValue(forKey: name), let key = ConfigKeys.all.first(where: { $0.path == path })
            else { continue }
            if env[key.environmentName] == nil { env[key.environmentName] = v }
        }
        let names = Set(ConfigKeys.all.map(\.environmentName))
        for name in env.keys.sorted() where name.hasPrefix("ETAG_PROXY_") {
            guard !names.contains(name), !otherVariables.contains(name) else { continue }
            let hint = nearest(name, among: Array(names)).map { " (did you mean \($0)?)" } ?? ""
            throw ConfigError(
                source: "environment", line: nil, key: name, message: "unknown variable\(hint)")
        }
        for key in ConfigKeys.all {
            guard let value = env[key.environmentName] else { continue }
            if let problem = key.apply(&config, value) {
                throw ConfigError(source: "environment", line: nil, key: key.environmentName, message: problem)
            }
            sources?.set(key.path, "environment \(key.environmentName)")
        }
    }

    private static func unknownKey(_ path: String) -> String {
        let known = ConfigKeys.all.map(\.path)
        let last = path.split(separator: ".").last.map(String.init) ?? path
        if let near = known.first(where: { $0.hasSuffix("." + last) || $0 == last }) ?? nearest(path, among: known) {
            return "unknown key (did you mean '\(near)'?)"
        }
        return "unknown key"
    }

    /// The candidate within a third of `name`'s length in edits (Levenshtein), if any.
    static func nearest(_ name: String, among candidates: [String]) -> String? {
        let a = Array(name.utf8)
        var best: (String, Int)? = nil
        for c in candidates {
            let d = editDistance(a, Array(c.utf8))
            if d <= max(2, a.count / 3), d < (best?.1 ?? Int.max) { best = (c, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }

    private static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }
}

extension ConfigLoader {
    /// Command-line flags override the file and the environment.
    public static func applyFlags(
        listen: String?, upstream: String?, workers: String?, to config: inout ProxyConfig,
        sources: ConfigSources? = nil
    )
        throws
    {
        let flags: [(String, String?)] = [("listen", listen), ("upstream", upstream), ("workers", workers)]
        for (path, value) in flags {
            guard let value, let key = ConfigKeys.all.first(where: { $0.path == path }) else { continue }
            if let problem = key.apply(&config, value) {
                throw ConfigError(source: "--\(path)", line: nil, key: path, message: problem)
            }
            sources?.set(path, "flag --\(path)")
        }
    }
}

/// Where each key got its value: a flag, the environment, the file and line; keys absent here are defaults.
public final class ConfigSources: @unchecked Sendable {
    public private(set) var byKey: [String: String] = [:]
    public init() {}
    func set(_ key: String, _ source: String) { byKey[key] = source }
    /// Records a value a caller set itself (a flag of its own).
    public func note(_ key: String, _ source: String) { byKey[key] = source }
}

extension ConfigKeys {
    /// The effective configuration, one `key: value  # source` line per key (`--print-config`).
    public static func describe(_ config: ProxyConfig, sources: ConfigSources) -> String {
        all.map { key in
            "\(key.path): \(key.render(config))  # \(sources.byKey[key.path] ?? "default")"
        }.joined(separator: "\n") + "\n"
    }

    /// Earlier names still read: `access_log: off` is `access_log.target: off`.
    public static let aliases: [String: String] = ["access_log": "access_log.target"]

    /// Keys whose new value takes effect only in a new process.
    public static let restartOnly: Set<String> = [
        "listen", "listen_reuse", "workers", "io_uring", "cache.name", "cache.size", "admin.listen",
        // The fleet's connections are made once per worker at start.
        "fleet.redis", "fleet.redis_password", "fleet.name", "fleet.on_redis_down", "timeouts.redis",
    ]

    /// The keys whose rendered values differ, with both values.
    public static func changes(from old: ProxyConfig, to new: ProxyConfig) -> [(key: String, old: String, new: String)]
    {
        all.compactMap { k in
            let (a, b) = (k.render(old), k.render(new))
            return a == b ? nil : (k.path, a, b)
        }
    }
}

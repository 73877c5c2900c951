import EtagCore
import Foundation
import Yams

/// A config problem, naming the key and, for a file, the line.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public var line: Int?
    public var key: String
    public var message: String

    public var description: String {
        let loc = line.map { "\(source):\($0)" } ?? source
        return key.isEmpty ? "\(loc): \(message)" : "\(loc): \(key): \(message)"
    }
}

/// Builds a `ProxyConfig` from defaults, then a YAML file, then `ETAG_PROXY_…` environment variables.
/// Every key is listed in `ConfigKeys.all`; an unknown key is an error, not a silent no-op.
public enum ConfigLoader {
    /// Loads `file` (when given) and the environment on top of the defaults.
    /// - Throws: `ConfigError` naming the first bad key.
    public static func load(
        file: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    )
        throws -> ProxyConfig
    {
        var config = ProxyConfig()
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ConfigError(source: file, line: nil, key: "", message: "cannot read the file")
            }
            try apply(yaml: String(decoding: data, as: UTF8.self), source: file, to: &config)
        }
        try applyEnvironment(environment, to: &config)
        return config
    }

    /// Applies YAML text to `config`.
    public static func apply(yaml: String, source: String, to config: inout ProxyConfig) throws {
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
        try walk(mapping, prefix: "", source: source, into: &config)
    }

    private static func walk(
        _ mapping: Node.Mapping, prefix: String, source: String, into config: inout ProxyConfig
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
                try walk(inner, prefix: path, source: source, into: &config)
            case .scalar(let scalar):
                guard let key = ConfigKeys.all.first(where: { $0.path == path }) else {
                    throw ConfigError(source: source, line: k.mark?.line, key: path, message: unknownKey(path))
                }
                if let problem = key.apply(&config, scalar.string) {
                    throw ConfigError(source: source, line: v.mark?.line ?? k.mark?.line, key: path, message: problem)
                }
            case .sequence(let seq) where ConfigKeys.all.contains(where: { $0.path == path && $0.acceptsList }):
                let key = ConfigKeys.all.first { $0.path == path }!
                let items = seq.map { $0.string ?? "" }
                if let problem = key.apply(&config, items.joined(separator: ",")) {
                    throw ConfigError(source: source, line: v.mark?.line ?? k.mark?.line, key: path, message: problem)
                }
            default:
                throw ConfigError(source: source, line: k.mark?.line, key: path, message: "must be a single value")
            }
        }
    }

    /// `ETAG_PROXY_TIMEOUTS_UPSTREAM=5s` sets `timeouts.upstream`.
    public static func applyEnvironment(_ env: [String: String], to config: inout ProxyConfig) throws {
        for key in ConfigKeys.all {
            guard let value = env[key.environmentName] else { continue }
            if let problem = key.apply(&config, value) {
                throw ConfigError(source: "environment", line: nil, key: key.environmentName, message: problem)
            }
        }
    }

    private static func unknownKey(_ path: String) -> String {
        let known = ConfigKeys.all.map(\.path)
        let last = path.split(separator: ".").last.map(String.init) ?? path
        if let near = known.first(where: { $0.hasSuffix("." + last) || $0 == last }) {
            return "unknown key (did you mean '\(near)'?)"
        }
        return "unknown key"
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
        listen: String?, upstream: String?, workers: String?, to config: inout ProxyConfig
    )
        throws
    {
        let flags: [(String, String?)] = [("listen", listen), ("upstream", upstream), ("workers", workers)]
        for (path, value) in flags {
            guard let value, let key = ConfigKeys.all.first(where: { $0.path == path }) else { continue }
            if let problem = key.apply(&config, value) {
                throw ConfigError(source: "--\(path)", line: nil, key: path, message: problem)
            }
        }
    }
}

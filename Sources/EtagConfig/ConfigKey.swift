import EtagCore

/// One config key: its dotted path, what it means, how a text value is applied, and how the value a config holds
/// is written back as text. The default shown anywhere (the README table, `--check-config`) is that rendering of
/// `ProxyConfig()`: the defaults have one source, the value type.
public struct ConfigKey: Sendable {
    public let path: String
    public let meaning: String
    /// Whether a YAML list is accepted (its items joined with commas).
    public let acceptsList: Bool
    /// The value holds a secret (the Redis password) that its rendering replaces by `***` or `(set)`.
    public let hidesSecret: Bool
    let apply: @Sendable (inout ProxyConfig, String) -> String?
    let render: @Sendable (ProxyConfig) -> String

    /// The default, as the README's key table shows it (in backticks unless it is a sentence).
    public var defaultText: String { render(ProxyConfig()) }

    /// `ETAG_PROXY_` + the path upper-cased, dots as underscores.
    public var environmentName: String {
        "ETAG_PROXY_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// The key's row in the README's configuration table.
    public var markdownRow: String {
        let shown = defaultText.hasPrefix("(") ? String(defaultText.dropFirst().dropLast()) : "`\(defaultText)`"
        return "| `\(path)` | \(shown) | \(meaning) |"
    }
}

/// The kinds of value a key holds: each parses text into a field of `ProxyConfig` and renders it back.
extension ConfigKey {
    typealias Field<T> = WritableKeyPath<ProxyConfig, T> & Sendable

    init(
        _ path: String, _ meaning: String, list: Bool = false, secret: Bool = false,
        apply: @escaping @Sendable (inout ProxyConfig, String) -> String?,
        render: @escaping @Sendable (ProxyConfig) -> String
    ) {
        self.init(path: path, meaning: meaning, acceptsList: list, hidesSecret: secret, apply: apply, render: render)
    }

    static func duration(_ path: String, _ field: Field<Int>, positive: Bool = true, _ meaning: String) -> ConfigKey {
        ConfigKey(
            path, meaning,
            apply: { c, text in
                guard let ms = ConfigValues.duration(text), !positive || ms > 0 else {
                    return "'\(text)' is not a \(positive ? "positive " : "")duration (like 250ms, 30s, 5m)"
                }
                c[keyPath: field] = ms
                return nil
            }, render: { ConfigValues.durationText($0[keyPath: field]) })
    }

    static func size(_ path: String, _ field: Field<Int>, min: Int, _ meaning: String) -> ConfigKey {
        ConfigKey(
            path, meaning,
            apply: { c, text in
                guard let n = ConfigValues.size(text) else { return "'\(text)' is not a size (like 512, 64KiB, 10MiB)" }
                guard n >= min else { return "must be at least \(min) bytes" }
                c[keyPath: field] = n
                return nil
            }, render: { ConfigValues.sizeText($0[keyPath: field]) })
    }

    static func count(_ path: String, _ field: Field<Int>, min: Int, _ meaning: String) -> ConfigKey {
        ConfigKey(
            path, meaning,
            apply: { c, text in
                guard let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= min else {
                    return "'\(text)' is not a whole number of at least \(min)"
                }
                c[keyPath: field] = n
                return nil
            }, render: { String($0[keyPath: field]) })
    }

    static func bool(_ path: String, _ field: Field<Bool>, _ meaning: String) -> ConfigKey {
        ConfigKey(
            path, meaning,
            apply: { c, text in
                switch text.lowercased() {
                case "true", "yes", "on", "1": c[keyPath: field] = true
                case "false", "no", "off", "0": c[keyPath: field] = false
                default: return "'\(text)' is not true or false"
                }
                return nil
            }, render: { $0[keyPath: field] ? "true" : "false" })
    }

    /// An optional text value (a file path or a name); `""` or `none` unsets it.
    static func path(_ path: String, _ field: Field<String?>, _ meaning: String) -> ConfigKey {
        ConfigKey(
            path, meaning,
            apply: { c, text in
                let t = text.trimmingCharacters(in: .whitespaces)
                c[keyPath: field] = t.isEmpty || t.lowercased() == "none" ? nil : t
                return nil
            }, render: { $0[keyPath: field] ?? "(none)" })
    }

    /// A key whose value names one case of `E` (any letter case).
    static func choice<E: RawRepresentable & CaseIterable & Sendable>(
        _ path: String, _ field: Field<E>,
        _ meaning: String
    ) -> ConfigKey
    where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        let listed = names.dropLast().joined(separator: ", ") + " or " + names.last!
        return ConfigKey(
            path, meaning,
            apply: { c, text in
                guard let v = E(rawValue: text.lowercased()) else { return "'\(text)' is not \(listed)" }
                c[keyPath: field] = v
                return nil
            }, render: { $0[keyPath: field].rawValue })
    }
}

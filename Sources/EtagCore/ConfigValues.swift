import EtagHTTP

/// Parsing of the config's scalar forms: durations (`250ms`, `30s`, `5m`, `1h`), sizes (`64KiB`, `10MiB`,
/// `512`), listen addresses and upstream URLs. Pure; errors are sentences for the operator.
public enum ConfigValues {
    /// A duration in milliseconds. A bare number is seconds.
    public static func duration(_ text: String) -> Int? {
        let s = text.trimmingSpaces
        let (num, unit) = splitNumber(s)
        guard let value = Double(num), value >= 0, value.isFinite else { return nil }
        let factor: Double
        switch unit.lowercased() {
        case "ms": factor = 1
        case "", "s": factor = 1000
        case "m", "min": factor = 60_000
        case "h": factor = 3_600_000
        default: return nil
        }
        let ms = value * factor
        guard ms <= Double(Int32.max) else { return nil }
        return Int(ms.rounded())
    }

    /// A size in bytes. Binary (KiB, MiB, GiB) and decimal (KB, MB, GB) units; `k`/`m`/`g` are binary.
    public static func size(_ text: String) -> Int? {
        let s = text.trimmingSpaces
        let (num, unit) = splitNumber(s)
        guard let value = Double(num), value >= 0, value.isFinite else { return nil }
        let factor: Double
        switch unit.lowercased() {
        case "", "b": factor = 1
        case "k", "kib": factor = 1024
        case "m", "mib": factor = 1024 * 1024
        case "g", "gib": factor = 1024 * 1024 * 1024
        case "kb": factor = 1000
        case "mb": factor = 1_000_000
        case "gb": factor = 1_000_000_000
        default: return nil
        }
        let bytes = value * factor
        guard bytes <= Double(Int.max / 2) else { return nil }
        return Int(bytes.rounded())
    }

    /// A duration as the config writes it: whole seconds as `30s`, anything else in `ms`.
    public static func durationText(_ ms: Int) -> String {
        ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }

    /// A size as the config writes it: whole MiB or KiB with their unit, anything else in bytes.
    public static func sizeText(_ bytes: Int) -> String {
        if bytes > 0 && bytes % (1024 * 1024) == 0 { return "\(bytes / (1024 * 1024))MiB" }
        if bytes > 0 && bytes % 1024 == 0 { return "\(bytes / 1024)KiB" }
        return String(bytes)
    }

    /// `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces).
    public static func listen(_ text: String) -> ListenAddress? {
        let s = text.trimmingSpaces
        guard let (host, port) = hostPort(s), let port else { return nil }
        return ListenAddress(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    /// `http[s]://host[:port][/base]`. The base path is what RFC 3986 §3.3 allows in a path (pchars and `/`, with
    /// valid percent-encoding) and has no dot-segment: it goes into every request line sent upstream, so a space
    /// or a control byte would break it (found by fuzzing the config keys).
    public static func upstream(_ text: String) -> Result<UpstreamURL, ConfigValueError> {
        let s = text.trimmingSpaces
        guard let schemeEnd = s.firstRange(of: "://") else {
            return .failure(ConfigValueError("must be a URL like http://127.0.0.1:9000"))
        }
        let scheme = s[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else {
            return .failure(ConfigValueError("scheme '\(scheme)' is not supported (http or https)"))
        }
        let rest = s[schemeEnd.upperBound...]
        let authEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let auth = String(rest[..<authEnd])
        var path = String(rest[authEnd...])
        guard !path.contains("?"), !path.contains("#") else {
            return .failure(ConfigValueError("must not have a query or fragment"))
        }
        while path.hasSuffix("/") { path.removeLast() }
        guard validBasePath(path) else {
            return .failure(
                ConfigValueError("has a base path with a character a URL path cannot hold, or a . or .. segment"))
        }
        guard !auth.contains("@"), let (host, port) = hostPort(auth), !host.isEmpty else {
            return .failure(ConfigValueError("has no valid host"))
        }
        return .success(
            UpstreamURL(scheme: scheme, host: host, port: port ?? (scheme == "https" ? 443 : 80), basePath: path))
    }

    /// Splits "host:port" / "[v6]:port" / "host"; port nil when absent. Nil when malformed.
    /// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (the form Redis clients share; `rediss://` is not supported).
    public static func redis(_ text: String) -> Result<RedisEndpoint, ConfigValueError> {
        let s = text.trimmingSpaces
        guard s.lowercased().hasPrefix("redis://") else {
            return .failure(ConfigValueError("must be a URL like redis://127.0.0.1:6379"))
        }
        var rest = Substring(s.dropFirst("redis://".count))
        var user: String? = nil
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            let cred = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = cred.firstIndex(of: ":"),
                let u = percentDecoded(cred[..<colon]), let p = percentDecoded(cred[cred.index(after: colon)...]),
                !p.isEmpty
            else {
                return .failure(ConfigValueError("has credentials that are not :PASSWORD or USER:PASSWORD"))
            }
            user = u.isEmpty ? nil : u
            password = p
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let dbText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !dbText.isEmpty {
                guard let n = Int(dbText), n >= 0, n <= 15_999 else {
                    return .failure(ConfigValueError("has a database that is not a number"))
                }
                db = n
            }
        }
        guard !rest.contains("?"), !rest.contains("#"), let (host, port) = hostPort(String(rest)), !host.isEmpty
        else {
            return .failure(ConfigValueError("has no valid host"))
        }
        guard port.map({ $0 >= 1 }) ?? true else { return .failure(ConfigValueError("has port 0")) }
        return .success(RedisEndpoint(host: host, port: port ?? 6379, db: db, user: user, password: password))
    }

    /// `%XX` escapes decoded (RFC 3986 §2.1), as a URL's user and password may need; nil for a broken escape.
    static func percentDecoded(_ s: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "%") else {
                out.append(b)
                continue
            }
            guard bytes.count >= 2, let hi = ByteClass.hexValue(bytes.removeFirst()),
                let lo = ByteClass.hexValue(bytes.removeFirst())
            else { return nil }
            out.append(UInt8(hi << 4 | lo))
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hostPort(_ s: String) -> (String, Int?)? {
        var host: Substring
        var portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if after.isEmpty {
                portText = nil
            } else {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = s.lastIndex(of: ":") {
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            if host.contains(":") { return nil }
        } else {
            host = Substring(s)
            portText = nil
        }
        var port: Int? = nil
        if let portText {
            guard let p = Int(portText), p >= 0, p <= 65535 else { return nil }
            port = p
        }
        // RFC 3986 §3.2.2: a reg-name or IPv4 address (unreserved and pct-encoded), or an IPv6 literal (hex, ':'
        // and '.'). The host goes into Host, SNI and the certificate check: nothing else may reach them.
        let bracketed = s.hasPrefix("[")
        guard
            host.utf8.allSatisfy({ c in
                bracketed
                    ? ByteClass.hexValue(c) != nil || c == UInt8(ascii: ":") || c == UInt8(ascii: ".")
                    : isUnreserved(c) || c == UInt8(ascii: "%")
            })
        else { return nil }
        return (String(host), port)
    }

    /// RFC 3986 §2.3 unreserved: ALPHA DIGIT - . _ ~
    private static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == UInt8(ascii: "-")
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "~")
    }

    /// sub-delims / ":" / "@" (RFC 3986 §3.3), the pchars besides unreserved and pct-encoded.
    private static let pathSubDelims = Set("!$&'()*+,;=:@".utf8)

    /// A base path of RFC 3986 §3.3 segments (pchar = unreserved / pct-encoded / sub-delims / ":" / "@"), each
    /// `%` followed by two hex digits, and no `.` or `..` segment, `%2e` spellings included, as the request parser
    /// refuses them ("" is no base path).
    static func validBasePath(_ path: String) -> Bool {
        let b = Array(path.utf8)
        if b.isEmpty { return true }
        guard b[0] == UInt8(ascii: "/") else { return false }
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < b.count, ByteClass.hexValue(b[i + 1]) != nil, ByteClass.hexValue(b[i + 2]) != nil else {
                    return false
                }
                i += 3
                continue
            }
            guard isUnreserved(c) || c == UInt8(ascii: "/") || pathSubDelims.contains(c) else { return false }
            i += 1
        }
        return !RequestParser.hasDotSegment(b)
    }

    private static func splitNumber(_ s: String) -> (String, String) {
        let idx = s.firstIndex(where: { !($0.isNumber || $0 == ".") }) ?? s.endIndex
        return (String(s[..<idx]), String(s[idx...]).trimmingSpaces)
    }
}

public struct ConfigValueError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

import EtagHTTP

/// What an upstream response says about storing it (RFC 9111 §5.2.2, RFC 9110 §12.5.5).
public struct ResponseCacheDirectives: Sendable, Equatable {
    public var noStore = false
    public var noCache = false
    public var isPrivate = false
    /// Seconds, from s-maxage (preferred by a shared cache) or max-age.
    public var maxAge: Int? = nil
    /// Lowercase names of the request fields the representation varies on: those listed in Vary, plus
    /// Accept-Encoding whenever the body has a content coding — a gzip and an identity body never share a
    /// strong tag (RFC 9110 §8.8.3), even from an upstream that forgets to say `Vary: Accept-Encoding`.
    public var vary: [[UInt8]] = []
    public var varyStar = false

    public init() {}

    public init(_ block: FieldBlock) {
        var sMaxAge: Int? = nil
        var encoded = false
        block.bytes.withUnsafeBytes { b in
            for f in block.fields {
                if f.name.count == 13 && b.equalsLowercasePublic(f.name, "cache-control") {
                    for d in Self.elements(block.bytes[f.value]) {
                        let lower = d.map { $0 | ($0 >= 0x41 && $0 <= 0x5A ? 0x20 : 0) }
                        let s = String(decoding: lower, as: UTF8.self)
                        if s == "no-store" {
                            noStore = true
                        } else if s == "no-cache" || s.hasPrefix("no-cache=") {
                            noCache = true
                        } else if s == "private" || s.hasPrefix("private=") {
                            isPrivate = true
                        } else if s.hasPrefix("max-age=") {
                            maxAge = Int(s.dropFirst(8).trimmingQuotes)
                        } else if s.hasPrefix("s-maxage=") {
                            sMaxAge = Int(s.dropFirst(9).trimmingQuotes)
                        }
                    }
                } else if f.name.count == 4 && b.equalsLowercasePublic(f.name, "vary") {
                    for e in Self.elements(block.bytes[f.value]) {
                        if e == [UInt8(ascii: "*")] { varyStar = true }
                        vary.append(e.map { $0 | ($0 >= 0x41 && $0 <= 0x5A ? 0x20 : 0) })
                    }
                } else if f.name.count == 16 && b.equalsLowercasePublic(f.name, "content-encoding") {
                    if Self.elements(block.bytes[f.value]).contains(where: { !Self.isIdentity($0) }) { encoded = true }
                } else if f.name.count == 6 && b.equalsLowercasePublic(f.name, "pragma") {
                    // RFC 9111 §5.4 deprecates Pragma; honour no-cache when Cache-Control is absent anyway.
                    if String(decoding: block.bytes[f.value], as: UTF8.self).lowercased().contains("no-cache") {
                        noCache = true
                    }
                }
            }
        }
        if let s = sMaxAge { maxAge = s }
        if encoded && !vary.contains(Self.acceptEncoding) { vary.append(Self.acceptEncoding) }
    }

    private static let acceptEncoding = Array("accept-encoding".utf8)

    private static func isIdentity(_ coding: [UInt8]) -> Bool {
        coding.count == 8 && String(decoding: coding, as: UTF8.self).lowercased() == "identity"
    }

    static func elements(_ v: ArraySlice<UInt8>) -> [[UInt8]] {
        v.split(separator: UInt8(ascii: ",")).map { part in
            Array(part.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed())
        }.filter { !$0.isEmpty }
    }
}

extension Substring {
    var trimmingQuotes: Substring { self.filter { $0 != "\"" }[...] }
}

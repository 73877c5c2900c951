#if canImport(Glibc)
import Glibc
#endif

/// An entity-tag (RFC 9110 §8.8.3): an opaque string, strong or weak.
public struct EntityTag: Sendable, Equatable, CustomStringConvertible {
    /// The opaque-tag without its quotes (a slice of the field value it was parsed from: no copy).
    public var opaque: ArraySlice<UInt8>
    public var weak: Bool

    public init(opaque: ArraySlice<UInt8>, weak: Bool = false) {
        self.opaque = opaque
        self.weak = weak
    }

    public init(opaque: [UInt8], weak: Bool = false) {
        self.init(opaque: opaque[...], weak: weak)
    }

    /// Strong comparison (§8.8.3.2): both strong and the same characters.
    public func strongMatches(_ other: EntityTag) -> Bool { !weak && !other.weak && sameOpaque(other) }

    /// Weak comparison (§8.8.3.2): the same characters, weakness ignored.
    public func weakMatches(_ other: EntityTag) -> Bool { sameOpaque(other) }

    private func sameOpaque(_ other: EntityTag) -> Bool {
        guard opaque.count == other.opaque.count else { return false }
        return opaque.withUnsafeBytes { a in
            other.opaque.withUnsafeBytes { b in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
        }
    }

    /// The field value form, always quoted (we never emit unquoted tags).
    public var description: String { (weak ? "W/" : "") + "\"" + String(decoding: opaque, as: UTF8.self) + "\"" }
}

/// The value of If-Match or If-None-Match: `*` or a list of tags (RFC 9110 §13.1.1, §13.1.2).
public enum EntityTagList: Sendable, Equatable {
    case any
    case tags([EntityTag])

    /// Parses a field value (all field lines combined). Lenient: unquoted tags are accepted, as clients send
    /// them (`If-None-Match: 42e98b…`); elements that are not tags at all are skipped.
    public static func parse(_ value: some Collection<UInt8>) -> EntityTagList {
        parse(bytes: Array(value))
    }

    /// `parse` for bytes already in an array (no copy).
    public static func parse(bytes b: [UInt8]) -> EntityTagList { parse(bytes: b, in: b.indices) }

    /// `parse` for the field value at `range` of `b` (a parsed head's bytes): the tags are slices of `b`.
    public static func parse(bytes b: [UInt8], in range: Range<Int>) -> EntityTagList {
        var i = range.lowerBound
        let end = range.upperBound
        var tags: [EntityTag] = []
        var sawStar = false
        func skipSeparators() {
            while i < end, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x2C { i += 1 }
        }
        skipSeparators()
        while i < end {
            var weak = false
            if i + 1 < end, b[i] == UInt8(ascii: "W"), b[i + 1] == UInt8(ascii: "/") {
                weak = true
                i += 2
            }
            if i < end, b[i] == UInt8(ascii: "\"") {
                let start = i + 1
                var j = start
                while j < end, b[j] != UInt8(ascii: "\"") { j += 1 }
                tags.append(EntityTag(opaque: b[start..<j], weak: weak))
                i = min(j + 1, end)
            } else {
                let start = i
                while i < end, b[i] != 0x2C, b[i] != 0x20, b[i] != 0x09 { i += 1 }
                if i - start == 1 && b[start] == UInt8(ascii: "*") && !weak {
                    sawStar = true
                } else if i > start {
                    tags.append(EntityTag(opaque: b[start..<i], weak: weak))
                }
            }
            // Skip to the next list element.
            while i < end, b[i] != 0x2C { i += 1 }
            skipSeparators()
        }
        return sawStar ? .any : .tags(tags)
    }

    public static func parse(_ s: String) -> EntityTagList { parse(bytes: Array(s.utf8)) }

    /// If-Match (§13.1.1): `*` is true when a current representation exists; otherwise strong comparison.
    public func ifMatchPasses(current: EntityTag?) -> Bool {
        guard let current else { return false }
        switch self {
        case .any: return true
        case .tags(let tags): return tags.contains { $0.strongMatches(current) }
        }
    }

    /// If-None-Match (§13.1.2): `*` is false when a current representation exists; otherwise false when any
    /// listed tag matches by weak comparison.
    public func ifNoneMatchPasses(current: EntityTag?) -> Bool {
        guard let current else { return true }
        switch self {
        case .any: return false
        case .tags(let tags): return !tags.contains { $0.weakMatches(current) }
        }
    }
}

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
///
/// A parsed field value keeps only where the list is in the head's bytes: the list is scanned once, when it is
/// evaluated, so a conditional request costs no array of tags (the cached-304 path allocates nothing here).
public struct EntityTagList: Sendable, Equatable {
    private enum Storage: Sendable {
        case any
        /// A field value, scanned on use.
        case field([UInt8], Range<Int>)
        case list([EntityTag])
    }

    private let storage: Storage

    /// `*`.
    public static let any = EntityTagList(storage: .any)

    /// A list of these tags.
    public static func tags(_ tags: [EntityTag]) -> EntityTagList { EntityTagList(storage: .list(tags)) }

    /// Whether the list is `*` (an element `*` anywhere makes the whole field `*`).
    public var isAny: Bool { firstElement { if case .star = $0 { return true } else { return false } } != nil }

    /// The tags in order (none for `*`).
    public var tags: [EntityTag] {
        if isAny { return [] }
        var all: [EntityTag] = []
        _ = firstElement {
            if case .tag(let t) = $0 { all.append(t) }; return false
        }
        return all
    }

    /// The first tag, if the list is not `*`.
    public var first: EntityTag? {
        if isAny { return nil }
        if case .tag(let t) = firstElement({ if case .tag = $0 { return true } else { return false } }) { return t }
        return nil
    }

    public static func == (l: EntityTagList, r: EntityTagList) -> Bool {
        l.isAny == r.isAny && l.tags == r.tags
    }

    /// Parses a field value (all field lines combined). Lenient: unquoted tags are accepted, as clients send
    /// them (`If-None-Match: 42e98b…`); elements that are not tags at all are skipped.
    public static func parse(_ value: some Collection<UInt8>) -> EntityTagList {
        parse(bytes: Array(value))
    }

    /// `parse` for bytes already in an array (no copy).
    public static func parse(bytes b: [UInt8]) -> EntityTagList { parse(bytes: b, in: b.indices) }

    /// `parse` for the field value at `range` of `b` (a parsed head's bytes): the tags are slices of `b`.
    public static func parse(bytes b: [UInt8], in range: Range<Int>) -> EntityTagList {
        EntityTagList(storage: .field(b, range))
    }

    public static func parse(_ s: String) -> EntityTagList { parse(bytes: Array(s.utf8)) }

    /// If-Match (§13.1.1): `*` is true when a current representation exists; otherwise strong comparison.
    public func ifMatchPasses(current: EntityTag?) -> Bool {
        guard let current else { return false }
        return firstElement {
            switch $0 {
            case .star: return true
            case .tag(let t): return t.strongMatches(current)
            }
        } != nil
    }

    /// If-None-Match (§13.1.2): `*` is false when a current representation exists; otherwise false when any
    /// listed tag matches by weak comparison.
    public func ifNoneMatchPasses(current: EntityTag?) -> Bool {
        guard let current else { return true }
        return firstElement {
            switch $0 {
            case .star: return true
            case .tag(let t): return t.weakMatches(current)
            }
        } == nil
    }

    private enum Element {
        case star
        case tag(EntityTag)
    }

    /// The first list element, in order, for which `stop` is true (one pass, no allocation).
    private func firstElement(_ stop: (Element) -> Bool) -> Element? {
        switch storage {
        case .any:
            return stop(.star) ? .star : nil
        case .list(let tags):
            for t in tags where stop(.tag(t)) { return .tag(t) }
            return nil
        case .field(let b, let range):
            return b.withUnsafeBufferPointer { p -> Element? in
                var i = range.lowerBound
                let end = range.upperBound
                func skipSeparators() {
                    while i < end, p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x2C { i += 1 }
                }
                skipSeparators()
                while i < end {
                    var weak = false
                    if i + 1 < end, p[i] == UInt8(ascii: "W"), p[i + 1] == UInt8(ascii: "/") {
                        weak = true
                        i += 2
                    }
                    var element: Element? = nil
                    if i < end, p[i] == UInt8(ascii: "\"") {
                        let start = i + 1
                        var j = start
                        while j < end, p[j] != UInt8(ascii: "\"") { j += 1 }
                        element = .tag(EntityTag(opaque: b[start..<j], weak: weak))
                        i = min(j + 1, end)
                    } else {
                        let start = i
                        while i < end, p[i] != 0x2C, p[i] != 0x20, p[i] != 0x09 { i += 1 }
                        if i - start == 1 && p[start] == UInt8(ascii: "*") && !weak {
                            element = .star
                        } else if i > start {
                            element = .tag(EntityTag(opaque: b[start..<i], weak: weak))
                        }
                    }
                    if let element, stop(element) { return element }
                    // Skip to the next list element.
                    while i < end, p[i] != 0x2C { i += 1 }
                    skipSeparators()
                }
                return nil
            }
        }
    }
}

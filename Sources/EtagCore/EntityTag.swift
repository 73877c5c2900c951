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

    /// Whether the field is `*` (only the whole field may be: a `*` among tags is a malformed element).
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

    /// Parses a field value (all field lines combined) by the list grammar (see `scan`): bare unquoted tags are
    /// accepted, as clients send them (`If-None-Match: 42e98b…`); malformed elements match nothing.
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

    /// The list grammar, exactly (RFC 9110 §5.6.1, §8.8.3, §13.1.1, §13.1.2): `*` alone, or comma-separated
    /// elements with optional whitespace and empty elements, each `"opaque"` or `W/"opaque"` (etagc bytes only),
    /// plus one leniency — a bare unquoted tag (`If-None-Match: 42e98b…`, as curl users type it). Anything else in
    /// an element (`"t"x`, `"t" x`, an unterminated `"t`, a `*` inside a list) makes that element malformed, and a
    /// malformed element matches nothing: an If-Match made only of them fails (412), never passes.
    private static func scan(
        _ p: UnsafeBufferPointer<UInt8>, _ b: [UInt8], _ range: Range<Int>, _ stop: (Element) -> Bool
    ) -> Element? {
        func ows(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
        // etagc = %x21 / %x23-7E / obs-text
        func etagc(_ c: UInt8) -> Bool { c == 0x21 || (c >= 0x23 && c != 0x7F) }
        var lo = range.lowerBound
        var hi = range.upperBound
        while lo < hi, ows(p[lo]) { lo += 1 }
        while hi > lo, ows(p[hi - 1]) { hi -= 1 }
        if hi - lo == 1 && p[lo] == UInt8(ascii: "*") { return stop(.star) ? .star : nil }
        var i = lo
        while i < hi {
            while i < hi, ows(p[i]) { i += 1 }
            if i < hi, p[i] == UInt8(ascii: ",") {  // an empty element
                i += 1
                continue
            }
            guard i < hi else { break }
            var weak = false
            var j = i
            if j + 1 < hi, p[j] == UInt8(ascii: "W"), p[j + 1] == UInt8(ascii: "/") {
                weak = true
                j += 2
            }
            var opaque: Range<Int>? = nil
            if j < hi, p[j] == UInt8(ascii: "\"") {
                var k = j + 1
                while k < hi, etagc(p[k]) { k += 1 }
                if k < hi, p[k] == UInt8(ascii: "\"") {
                    opaque = (j + 1)..<k
                    j = k + 1
                } else {
                    j = k  // unterminated, or a byte no tag may hold
                }
            } else {
                var k = j
                while k < hi, etagc(p[k]), p[k] != UInt8(ascii: ",") { k += 1 }
                // A bare `*` is not a tag (only the whole field may be `*`).
                if k > j, !(k - j == 1 && p[j] == UInt8(ascii: "*") && !weak) { opaque = j..<k }
                j = k
            }
            while j < hi, ows(p[j]) { j += 1 }
            // The element must end here: at a comma or at the end of the field.
            if let r = opaque, j == hi || p[j] == UInt8(ascii: ",") {
                let element = Element.tag(EntityTag(opaque: b[r], weak: weak))
                if stop(element) { return element }
            }
            while j < hi, p[j] != UInt8(ascii: ",") { j += 1 }  // past a malformed element
            i = j + 1
        }
        return nil
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
                Self.scan(p, b, range, stop)
            }
        }
    }
}

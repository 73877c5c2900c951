import EtagHTTP

/// The conditional request fields the proxy evaluates itself.
public struct Conditions: Sendable, Equatable {
    public var ifMatch: EntityTagList?
    public var ifNoneMatch: EntityTagList?
    /// If-Modified-Since / If-Unmodified-Since are present (evaluated only by the upstream, which may know
    /// Last-Modified; the proxy has no modification dates).
    public var hasIfModifiedSince: Bool
    public var hasIfUnmodifiedSince: Bool

    public init(
        ifMatch: EntityTagList? = nil, ifNoneMatch: EntityTagList? = nil,
        hasIfModifiedSince: Bool = false, hasIfUnmodifiedSince: Bool = false
    ) {
        self.ifMatch = ifMatch
        self.ifNoneMatch = ifNoneMatch
        self.hasIfModifiedSince = hasIfModifiedSince
        self.hasIfUnmodifiedSince = hasIfUnmodifiedSince
    }

    /// Reads the conditional fields of a request head (all field lines of each combined).
    public init(_ head: FieldBlock) {
        var im = ListField()
        var inm = ListField()
        var ims = false
        var ius = false
        head.bytes.withUnsafeBytes { b in
            for f in head.fields {
                let n = f.name
                switch n.count {
                case 8 where b.equalsLowercasePublic(n, "if-match"):
                    im.add(f.value, head.bytes)
                case 13 where b.equalsLowercasePublic(n, "if-none-match"):
                    inm.add(f.value, head.bytes)
                case 17 where b.equalsLowercasePublic(n, "if-modified-since"):
                    ims = true
                case 19 where b.equalsLowercasePublic(n, "if-unmodified-since"):
                    ius = true
                default:
                    break
                }
            }
        }
        self.init(
            ifMatch: im.list(head.bytes), ifNoneMatch: inm.list(head.bytes),
            hasIfModifiedSince: ims, hasIfUnmodifiedSince: ius)
    }

    /// The field lines of one list-valued field: parsed in place when there is one line (the usual case),
    /// combined with commas when there are several (RFC 9110 §5.3).
    private struct ListField {
        var first: Range<Int>? = nil
        var combined: [UInt8]? = nil

        mutating func add(_ value: Range<Int>, _ bytes: [UInt8]) {
            if let c = combined {
                combined = c + [0x2C] + bytes[value]
            } else if let f = first {
                combined = Array(bytes[f]) + [0x2C] + bytes[value]
            } else {
                first = value
            }
        }

        func list(_ bytes: [UInt8]) -> EntityTagList? {
            if let combined { return EntityTagList.parse(bytes: combined) }
            return first.map { EntityTagList.parse(bytes: bytes, in: $0) }
        }
    }

    public var isEmpty: Bool { ifMatch == nil && ifNoneMatch == nil }
}

/// What evaluating the preconditions decides.
public enum PreconditionOutcome: Sendable, Equatable {
    /// Perform the request (or send the 200 the proxy already has).
    case proceed
    /// 304 Not Modified (GET/HEAD whose If-None-Match is false).
    case notModified
    /// 412 Precondition Failed.
    case preconditionFailed
}

/// RFC 9110 §13.2.2, as one pure function: the order in which preconditions are evaluated.
/// - Parameters:
///   - method: the request method.
///   - conditions: the request's conditional fields.
///   - current: the selected representation's current tag, nil when none exists.
/// - Returns: what to answer. Callers apply §13.2.1 themselves: preconditions are evaluated only when the
///   response without them would be 2xx or 412.
public func evaluatePreconditions(
    method: HTTPMethod, _ conditions: Conditions, current: EntityTag?
)
    -> PreconditionOutcome
{
    // Step 1: If-Match; false → 412.
    if let im = conditions.ifMatch, !im.ifMatchPasses(current: current) {
        return .preconditionFailed
    }
    // Step 2 (If-Unmodified-Since without If-Match) needs Last-Modified: left to the upstream.
    // Step 3: If-None-Match; false → 304 for GET/HEAD, else 412.
    if let inm = conditions.ifNoneMatch, !inm.ifNoneMatchPasses(current: current) {
        return (method == .get || method == .head) ? .notModified : .preconditionFailed
    }
    // Step 4: If-Modified-Since is ignored when If-None-Match is present (§13.1.3); without it, the upstream
    // evaluates it. Step 5 (If-Range) concerns range requests, forwarded unchanged.
    return .proceed
}

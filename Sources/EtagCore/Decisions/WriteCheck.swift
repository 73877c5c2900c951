import EtagHTTP

/// The verdict on a guarded write once its pre-fetch has answered (RFC 9110 §13.1.1, §13.2.1, §13.2.2).
public enum WriteCheck: Sendable, Equatable {
    /// The preconditions hold: send the write.
    case send
    /// 412, naming the current tag (nil: no current representation).
    case preconditionFailed(current: [UInt8]?)
    /// The pre-fetch's answer (3xx, 401, 403, 5xx…) is relayed and the write not sent: preconditions are
    /// evaluated only when the answer without them would be 2xx or 412 (§13.2.1).
    case relayPrefetch
    /// The representation is larger than `etag.max_body`: it cannot be compared (502).
    case tooLarge

    /// - Parameters:
    ///   - status: the pre-fetch's status.
    ///   - currentTag: the quoted tag of the pre-fetched 2xx representation (nil when `status` is not 2xx).
    public static func decide(
        method: HTTPMethod, conditions: Conditions, status: Int, tooLarge: Bool, currentTag: [UInt8]?
    ) -> WriteCheck {
        var current: EntityTag? = nil
        switch status {
        case 200..<300:
            if tooLarge { return .tooLarge }
            current = currentTag.flatMap { EntityTagList.parse($0).first }
        case 404, 410:
            current = nil  // no current representation: If-Match fails, If-None-Match: * holds
        default:
            return .relayPrefetch
        }
        switch evaluatePreconditions(method: method, conditions, current: current) {
        case .proceed: return .send
        case .preconditionFailed, .notModified: return .preconditionFailed(current: current == nil ? nil : currentTag)
        }
    }
}

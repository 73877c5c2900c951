import EtagHTTP

/// What an exchange does with an upstream answer when its head arrives: relay it as it comes, or hold the whole
/// body first (its ETag goes in the head). Pure; decided once per response.
public enum ResponsePlan: Sendable, Equatable {
    /// Relayed unchanged as it arrives, without an ETag of ours.
    case stream
    /// Held whole (up to `etag.max_body`); `digest`: hashed as it arrives, its SHA-1 is the tag.
    case hold(digest: Bool)

    /// Which exchange asked.
    public enum Asker: Sendable, Equatable {
        /// A GET/HEAD; `conditions`: it carries If-Match or If-None-Match.
        case read(conditions: Bool)
        /// Any other method; `refetchWaits`: its answer waits for the re-fetch's tag (`Refetch.after`).
        case write(refetchWaits: Bool)
        /// OPTIONS or TRACE: safe (RFC 9110 §9.2.1), and their answers describe the server or echo the request
        /// rather than represent the target (§9.3.7, §9.3.8): relayed untagged.
        case safeOther
    }

    /// - Parameters:
    ///   - upstreamTag: the upstream sent a strong ETag of its own.
    ///   - maxBody: `etag.max_body`; a declared length above it is streamed.
    public static func decide(
        status: Int, framing: ResponseFraming, asker: Asker, etagMode: UpstreamETagMode, upstreamTag: Bool,
        afterWrite: ETagAfterWrite, maxBody: Int
    ) -> ResponsePlan {
        let keepTheirs = etagMode == .keep && upstreamTag
        let tagged: Bool
        var refetchWaits = false
        switch asker {
        case .read(let conditions):
            // RFC 9110 §8.8.3: a validator on the 200 only; the upstream's own kept tag needs no holding
            // unless a condition must be evaluated against it here.
            tagged = status == 200 && (!keepTheirs || conditions)
        case .safeOther:
            tagged = false
        case .write(let waits):
            refetchWaits = waits
            let hasBody = framing != .none && framing != .length(0)
            // A write's own answer is tagged with etag_after_write: body (and when there is nothing to
            // re-fetch: a POST's 201 without a Location); one waiting for its re-fetch is held untagged.
            tagged = waits || (afterWrite != .none && (status == 200 || status == 201) && hasBody)
        }
        guard tagged else { return .stream }
        if case .length(let n) = framing, n > UInt64(max(maxBody, 0)) { return .stream }  // too large to hold
        return .hold(digest: !keepTheirs && !refetchWaits)
    }
}

/// Whether the proxy is ready for traffic (`GET /readyz`): not draining, and the upstream reached recently — a
/// connect or a completed exchange by any worker, or the admin's own probe. Pure.
public enum Readiness {
    /// What one worker (or the admin probe) saw of the upstream, on the loops' monotonic millisecond clock.
    public struct Evidence: Sendable, Equatable {
        /// When the upstream was last reached; 0: never.
        public var reachedMs: UInt64
        /// When the current run of failures began (the first failure after the last reach); 0: none.
        public var failingSinceMs: UInt64
        /// Why the last attempt failed (a libuv error code), 0 when none.
        public var failureCode: Int32

        public init(reachedMs: UInt64 = 0, failingSinceMs: UInt64 = 0, failureCode: Int32 = 0) {
            self.reachedMs = reachedMs
            self.failingSinceMs = failingSinceMs
            self.failureCode = failureCode
        }

        /// The evidence of several observers as one: the latest reach wins; failures older than it are over.
        public static func combine(_ all: [Evidence]) -> Evidence {
            var out = Evidence()
            for e in all { out.reachedMs = max(out.reachedMs, e.reachedMs) }
            for e in all where e.failingSinceMs != 0 && e.failingSinceMs >= out.reachedMs {
                if out.failingSinceMs == 0 || e.failingSinceMs < out.failingSinceMs {
                    out.failingSinceMs = e.failingSinceMs
                }
                if e.failureCode != 0 { out.failureCode = e.failureCode }
            }
            return out
        }
    }

    public enum Verdict: Equatable, Sendable {
        case ready
        /// 503 with this one-line reason.
        case notReady(String)
        /// No recent evidence: connect to the upstream once, then decide again with `probed: true`.
        case probe
    }

    /// - Parameters:
    ///   - failure: how to name `evidence.failureCode` ("connection refused").
    ///   - probed: the admin has just probed the upstream (its outcome is in `evidence`).
    public static func decide(
        draining: Bool, evidence e: Evidence, nowMs: UInt64, unreadyAfterMs: UInt64, probed: Bool,
        failure: (Int32) -> String
    ) -> Verdict {
        if draining { return .notReady("draining: the proxy is shutting down") }
        let failing = e.failingSinceMs != 0 && e.failingSinceMs >= e.reachedMs
        if !failing && e.reachedMs != 0 && nowMs &- e.reachedMs < unreadyAfterMs { return .ready }
        // No recent reach, or failing: ask the upstream now (also how a recovery is noticed without traffic).
        if !probed { return .probe }
        let reason = e.failureCode == 0 ? "no answer" : failure(e.failureCode)
        if failing && nowMs &- e.failingSinceMs >= unreadyAfterMs {
            let s = (nowMs &- e.failingSinceMs) / 1000
            return .notReady("the upstream has been unreachable for \(s)s: \(reason)")
        }
        if e.reachedMs == 0 { return .notReady("the upstream has not been reached yet: \(reason)") }
        // Reached by the probe just now, or failing for less than `admin.unready_after`.
        return .ready
    }
}

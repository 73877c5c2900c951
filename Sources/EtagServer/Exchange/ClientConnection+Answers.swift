import EtagCore
import EtagHTTP

/// The proxy's own answers: problem+json errors (RFC 9457) and dropping an exchange.
extension ClientConnection {
    /// A request that could not be parsed: answer its status and close (RFC 9112 §2.2, §6.3).
    func rejectRequest(_ error: HTTPParseError) {
        if request == nil { exchangeStart = worker.now }
        fail(error.status, error.detail)
    }

    /// Answers the exchange with a problem+json error and closes the connection afterwards. When part of the
    /// response has already gone out, the connection is closed instead (never a silently truncated response).
    /// - Parameter keepAlive: keep the connection for the next request (an upstream failure after the whole
    ///   request was read); malformed or unread input always closes it.
    func fail(_ status: Int, _ detail: String, keepAlive: Bool = false) {
        let nothingSent = held != nil || pendingHead != nil || !responseStarted
        releaseHeld()
        detachUpstream()
        if !nothingSent {
            abort()
            return
        }
        pendingHead = nil
        statusSent = status
        keepAliveAfter = keepAliveAfter && keepAlive && bodyDone && request != nil
        let problem = Problem(status: status, detail: detail)
        write(problem.response(close: !keepAliveAfter, date: worker.date, headOnly: request?.method == .head))
        bodyBytesSent = 0
        endExchange()
    }

    /// Drops the exchange and the connection at once (reset mid-body, client gone).
    func abort() {
        detachUpstream()
        if request != nil {
            if statusSent == 0 { statusSent = 499 }
            worker.accessLog.record(self, aborted: true)
            leaveFlight()
            releaseGuard(abandoned: true)
            releaseHeld()
            request = nil
        }
        close()
    }
}

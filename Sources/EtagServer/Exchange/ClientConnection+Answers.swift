internal import CLibUV
import EtagCore
import EtagHTTP

/// The answers an exchange ends with: a complete response (the proxy's tag or none), a tagged one with its
/// preconditions evaluated, a 304 from the cache, the 412, problem+json errors (RFC 9457), and dropping the
/// exchange.
extension ClientConnection {
    /// Sends a complete upstream response with `body` (nil: empty), with `tag` as its ETag (the upstream's own
    /// dropped), or without one (the upstream's kept unless `etag.upstream: replace`), then ends the exchange.
    func respond(_ head: ResponseHead, body: HeldBytes?, tag: [UInt8]?, extra: [UInt8] = []) {
        let size = body?.count ?? 0
        record.statusSent = head.status
        record.upstreamStatus = head.status
        if !extra.isEmpty { record.cacheStatusLine = extra }  // the only extra line respond is given
        let headOnly = request?.method == .head
        // RFC 9110 §8.6: no Content-Length on 204 and 304.
        let framing: ForwardingRules.ClientFraming =
            head.status == 204 || head.status == 304 ? .none : .length(UInt64(size))
        let sendBody = !headOnly && framing != .none
        record.bodyBytesSent = sendBody ? UInt64(size) : 0
        let http11 = record.clientIsHTTP11
        let keepAlive = record.keepAliveAfter
        writeHead(body: sendBody ? body : nil) { w in
            settings.rules.clientResponseHead(
                into: &w, head, framing: framing, keepAlive: keepAlive, clientIsHTTP11: http11,
                date: worker.exchanges.date,
                dropETag: tag != nil || settings.etagMode == .replace, etag: tag, extra: extra,
                requestIdLine: requestIdLine)
        }
        endExchange()
    }

    /// Answers with a complete, tagged response: 304, 412 or the 200 with its ETag (RFC 9110 §13.2.2).
    func respondTagged(_ r: TaggedResponse, collapsed: Bool) {
        record.upstreamStatus = r.head.status
        var status: [UInt8] = []
        if let forward = read?.forward {
            status = CacheStatus.forwarded(forward, status: r.head.status, stored: r.stored, collapsed: collapsed)
        }
        var outcome = PreconditionOutcome.proceed
        if read?.conditions.isEmpty == false, let conditions = read?.conditions, let method = request?.method,
            let current = EntityTagList.parse(r.tag).first
        {
            outcome = evaluatePreconditions(method: method, conditions, current: current)
        }
        switch outcome {
        case .notModified:
            worker.exchanges.metrics.add(.notModifiedFromUpstream)
            record.statusSent = 304
            record.cacheStatusLine = status
            write(
                settings.rules.notModifiedHead(
                    etag: r.tag, date: worker.exchanges.date, fields: ForwardingRules.notModifiedFields(r.head),
                    extra: status,
                    keepAlive: record.keepAliveAfter, clientIsHTTP11: record.clientIsHTTP11,
                    requestIdLine: requestIdLine))
            endExchange()
        case .preconditionFailed:
            answer412(current: r.tag)
        case .proceed:
            respond(r.head, body: r.body, tag: r.ours ? r.tag : nil, extra: status)
        }
    }

    /// RFC 9110 §15.4.5: 304 from a fresh cache entry, without the upstream.
    func notModifiedFromCache(_ quotedTag: [UInt8], fields: [UInt8]) {
        worker.exchanges.metrics.add(.notModifiedFromCache)
        record.statusSent = 304
        record.cacheHit = true
        let keepAlive = record.keepAliveAfter
        let http11 = record.clientIsHTTP11
        writeHead { w in
            settings.rules.notModifiedHead(
                into: &w, etag: quotedTag, date: worker.exchanges.date, fields: fields,
                extra: CacheStatus.hit, keepAlive: keepAlive, clientIsHTTP11: http11, requestIdLine: requestIdLine)
        }
        endExchange()
    }

    /// The one 412 (RFC 9110 §15.5.13), for reads and writes alike: it names the current tag in an ETag field
    /// and in the problem's `etag` member (RFC 9457 §3.2), so the client knows what it lost to without another
    /// GET — nothing a GET would not tell it. `current` nil: there is no current representation.
    func answer412(current: [UInt8]?) {
        let tag = current.map { String(decoding: $0, as: UTF8.self) }
        let detail =
            tag == nil
            ? "The resource does not exist (any more): GET the collection again before writing."
            : "The resource has changed since you fetched it: GET it again and retry with its current ETag in If-Match."
        let problem = Problem(status: 412, detail: detail, extensions: [("etag", tag)])
        record.statusSent = 412
        record.bodyBytesSent = UInt64(problem.body.count)
        record.keepAliveAfter = record.keepAliveAfter && bodyDone
        var extra = requestIdLine
        if let current { extra += Array("ETag: ".utf8) + current + [13, 10] }
        write(
            problem.response(
                close: !record.keepAliveAfter, date: worker.exchanges.date, headOnly: request?.method == .head,
                extraFields: extra))
        if request?.method == .head { record.bodyBytesSent = 0 }
        endExchange()
    }

    /// A request that could not be parsed: answer its status and close (RFC 9112 §2.2, §6.3).
    func rejectRequest(_ error: HTTPParseError) {
        if request == nil {
            record = ExchangeRecord(keepAliveAfter: false, start: uv_hrtime())
            newRequestId()
        }
        reject(error.status, error.detail)
    }

    /// Refuses a request for what it is (malformed, too large, too slow: 4xx/5xx of the proxy's own), counted
    /// apart from the answers the upstream decides.
    func reject(_ status: Int, _ detail: String) {
        worker.metrics.add(MetricsLayout.rejected(status: status))
        fail(status, detail)
    }

    /// Answers the exchange with a problem+json error and closes the connection afterwards. When part of the
    /// response has already gone out, the connection is closed instead (never a silently truncated response).
    /// - Parameter keepAlive: keep the connection for the next request (an upstream failure after the whole
    ///   request was read); malformed or unread input always closes it.
    func fail(_ status: Int, _ detail: String, keepAlive: Bool = false) {
        if let r = relay {
            relay = nil
            let nothingSent = r.nothingSent
            r.end()
            // Part of the answer is out: a reset, so that a client reading to the close cannot take the cut
            // for the whole answer (a close-delimited body, RFC 9112 §6.3 item 8).
            if !nothingSent { return abort(reset: true) }
        }
        record.statusSent = status
        record.keepAliveAfter = record.keepAliveAfter && keepAlive && bodyDone && request != nil
        let problem = Problem(status: status, detail: detail)
        let headOnly = request?.method == .head
        write(
            problem.response(
                close: !record.keepAliveAfter, date: worker.exchanges.date, headOnly: headOnly,
                extraFields: requestIdLine))
        record.bodyBytesSent = headOnly ? 0 : UInt64(problem.body.count)
        endExchange()
    }

    /// Drops the exchange and the connection at once (reset mid-body, client gone).
    func abort(reset: Bool = false) {
        if request != nil {
            if record.statusSent == 0 { record.statusSent = 499 }
            account(aborted: true)
            endExchangeObjects(abandoned: true)
            record.request = nil
        } else {
            endExchangeObjects(abandoned: true)
        }
        if reset { closeWithReset() } else { close() }
    }
}

import EtagCore
import EtagHTTP

/// Relaying the upstream's response to the client (RFC 9112 §6, §7; RFC 9110 §7.6).
extension ClientConnection {
    /// Bytes from the upstream connection of the current exchange; returns how many were used.
    func upstreamBytes(_ up: UpstreamConnection, _ buf: UnsafeRawBufferPointer) -> Int {
        var off = 0
        if response == nil {
            while true {
                let rest = UnsafeRawBufferPointer(rebasing: buf[off...])
                do {
                    switch try ResponseParser.parse(
                        rest, requestMethod: request?.method ?? .get, limits: settings.responseLimits)
                    {
                    case .incomplete:
                        return off
                    case .complete(let head, let used):
                        off += used
                        if head.isInterim { continue }  // 1xx: Expect is answered by the proxy itself
                        if head.status == 101 {
                            upstreamBroken(up, "the upstream switched protocols, which this proxy does not relay")
                            return buf.count
                        }
                        startResponse(head, up)
                    }
                } catch {
                    upstreamBroken(up, error.detail)
                    return buf.count
                }
                break
            }
        }
        while response != nil && upstream === up {
            if queuedBytes > settings.bufferSize {
                upstreamPausedForClient = true
                up.stopReading()
                arm(.send, settings.timeouts.send)
                return off
            }
            do {
                let (event, next) = try responseDecoder.next(buf, at: off)
                off = next
                switch event {
                case .data(let r):
                    sendBody(UnsafeRawBufferPointer(rebasing: buf[r]))
                case .needMore:
                    flushHead()
                    up.arm(.response, settings.timeouts.upstream)
                    return off
                case .end:
                    finishResponse(up, leftover: buf.count - off)
                    return buf.count
                }
            } catch {
                // Broken framing mid-body: the client must not take a truncated body for a whole one.
                abort()
                return buf.count
            }
        }
        return buf.count
    }

    private func startResponse(_ head: ResponseHead, _ up: UpstreamConnection) {
        response = head
        upstreamStatus = head.status
        statusSent = head.status
        let isHead = request?.method == .head
        responseDecoder = BodyDecoder(response: head.framing, maxTrailerSize: settings.responseLimits.maxTrailerSize)
        clientFraming = ForwardingRules.clientFraming(for: head, clientIsHTTP11: request?.isHTTP11 ?? true)
        if clientFraming == .untilClose || !bodyDone { keepAliveAfter = false }
        if worker.draining { keepAliveAfter = false }
        pendingHead = settings.rules.clientResponseHead(
            head, framing: clientFraming, keepAlive: keepAliveAfter, clientIsHTTP11: request?.isHTTP11 ?? true,
            date: worker.date, passLength: isHead)
        responseStarted = true
        up.arm(.response, settings.timeouts.upstream)
    }

    private func sendBody(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        bodyBytesSent += UInt64(data.count)
        let head = pendingHead ?? []
        pendingHead = nil
        head.withUnsafeBytes { hb in
            if clientFraming == .chunked {
                let ch = ChunkedEncoder.header(data.count)
                ch.withUnsafeBytes { cb in
                    ChunkedEncoder.crlf.withUnsafeBytes { write(hb, cb, data, $0) }
                }
            } else {
                write(hb, data)
            }
        }
    }

    private func flushHead() {
        if let h = pendingHead {
            pendingHead = nil
            write(h)
        }
    }

    private func finishResponse(_ up: UpstreamConnection, leftover: Int) {
        let head = pendingHead ?? []
        pendingHead = nil
        if clientFraming == .chunked {
            head.withUnsafeBytes { hb in ChunkedEncoder.last.withUnsafeBytes { write(hb, $0) } }
        } else if !head.isEmpty {
            write(head)
        }
        let reusable = (response?.keepAlive ?? false) && bodyDone && leftover == 0 && !up.isClosing
        upstream = nil
        if reusable {
            up.stopTimer()
            worker.pool.release(up)
        } else {
            up.owner = nil
            up.close()
        }
        if upstreamPausedForClient { upstreamPausedForClient = false }
        endExchange()
    }

    // MARK: upstream failures

    /// The upstream closed (error nil) or failed while this exchange used it.
    func upstreamEnded(_ up: UpstreamConnection, error: Int32?) {
        guard upstream === up else { return up.close() }
        if response != nil {
            // RFC 9112 §6.3 item 8: a close-delimited body ends here; any other body is truncated.
            if error == nil && responseDecoder.finishAtClose() {
                finishResponse(up, leftover: 0)
            } else {
                abort()
            }
            return
        }
        if retryOnFreshConnection(up) { return }
        upstream = nil
        up.owner = nil
        up.close()
        fail(502, "the upstream closed the connection without a response", keepAlive: true)
    }

    /// A pooled connection that turns out closed is retried once on a new one, for idempotent requests
    /// without a body (RFC 9110 §9.2.2, RFC 9112 §9.3.1).
    private func retryOnFreshConnection(_ up: UpstreamConnection) -> Bool {
        guard let head = retryHead, up.exchanges > 0, !up.receivedResponseBytes else { return false }
        retryHead = nil
        upstream = nil
        up.owner = nil
        up.close()
        sendToUpstream(head)
        return true
    }

    func upstreamUnreachable(_ up: UpstreamConnection, _ code: Int32) {
        guard upstream === up else { return }
        upstream = nil
        fail(502, "the upstream is unreachable: \(UVError.name(code))", keepAlive: true)
    }

    func upstreamTimedOut(_ up: UpstreamConnection, connecting: Bool) {
        guard upstream === up else { return up.close() }
        upstream = nil
        up.owner = nil
        up.close()
        if response != nil {
            abort()
        } else if connecting {
            fail(504, "connecting to the upstream timed out", keepAlive: true)
        } else {
            fail(504, "the upstream did not answer within the upstream timeout", keepAlive: true)
        }
    }

    private func upstreamBroken(_ up: UpstreamConnection, _ detail: String) {
        upstream = nil
        up.owner = nil
        up.close()
        if responseStarted && pendingHead == nil {
            abort()
        } else {
            pendingHead = nil
            fail(502, "invalid response from the upstream: \(detail)", keepAlive: true)
        }
    }

    // MARK: local answers

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
        if let up = upstream {
            upstream = nil
            up.owner = nil
            up.close()
        }
        if responseStarted && pendingHead == nil {
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
        if let up = upstream {
            upstream = nil
            up.owner = nil
            up.close()
        }
        if request != nil {
            if statusSent == 0 { statusSent = 499 }
            worker.accessLog.record(self, aborted: true)
            request = nil
        }
        close()
    }
}

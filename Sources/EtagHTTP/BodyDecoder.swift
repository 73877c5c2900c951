/// Delimits one message body in a byte stream: by length, by chunks, or until the connection closes.
public struct BodyDecoder: Sendable {
    enum Mode: Sendable {
        case length(remaining: UInt64)
        case chunked(ChunkedDecoder)
        case untilClose
        case done
    }

    var mode: Mode
    /// Body bytes delivered so far (decoded, without chunk framing).
    public private(set) var bodyBytes: UInt64 = 0

    public init(request framing: RequestFraming, maxTrailerSize: Int) {
        switch framing {
        case .none: mode = .done
        case .length(let n): mode = n == 0 ? .done : .length(remaining: n)
        case .chunked: mode = .chunked(ChunkedDecoder(maxTrailerSize: maxTrailerSize))
        }
    }

    public init(response framing: ResponseFraming, maxTrailerSize: Int) {
        switch framing {
        case .none: mode = .done
        case .length(let n): mode = n == 0 ? .done : .length(remaining: n)
        case .chunked: mode = .chunked(ChunkedDecoder(maxTrailerSize: maxTrailerSize))
        case .untilClose: mode = .untilClose
        }
    }

    public var isDone: Bool {
        if case .done = mode { return true }
        return false
    }

    /// Bytes of a length-delimited body still to come (nil for chunked and close-delimited bodies, 0 when done):
    /// at most this many next bytes of the stream are body bytes, so they may be read straight into body storage.
    public var remainingLength: UInt64? {
        switch mode {
        case .length(let remaining): return remaining
        case .done: return 0
        default: return nil
        }
    }

    /// Next event from `buf[offset...]` and the offset to continue from.
    public mutating func next(_ buf: UnsafeRawBufferPointer, at offset: Int) throws(HTTPParseError) -> (BodyEvent, Int)
    {
        switch mode {
        case .done:
            return (.end, offset)
        case .untilClose:
            guard offset < buf.count else { return (.needMore, offset) }
            bodyBytes += UInt64(buf.count - offset)
            return (.data(offset..<buf.count), buf.count)
        case .length(let remaining):
            guard offset < buf.count else { return (.needMore, offset) }
            let take = min(remaining, UInt64(buf.count - offset))
            let e = offset + Int(take)
            bodyBytes += take
            mode = take == remaining ? .done : .length(remaining: remaining - take)
            return (.data(offset..<e), e)
        case .chunked(var decoder):
            mode = .done  // avoid a copy-on-write of the decoder while it is mutated
            defer { mode = decoder.isDone ? .done : .chunked(decoder) }
            let (ev, nx) = try decoder.next(buf, at: offset)
            if case .data(let r) = ev { bodyBytes += UInt64(r.count) }
            return (ev, nx)
        }
    }

    /// The peer closed the connection: complete for a close-delimited body, otherwise truncated.
    public mutating func finishAtClose() -> Bool {
        switch mode {
        case .untilClose, .done:
            mode = .done
            return true
        default:
            return false
        }
    }
}

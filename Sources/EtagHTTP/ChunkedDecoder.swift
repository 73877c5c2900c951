/// What a body decoder found next in a buffer.
public enum BodyEvent: Equatable, Sendable {
    /// Body bytes at this range of the buffer.
    case data(Range<Int>)
    /// All bytes given were consumed; more are needed.
    case needMore
    /// The body is complete; bytes after `next` belong to the next message.
    case end
}

/// Incremental decoder of the chunked transfer coding (RFC 9112 §7.1), strict: CRLF line ends,
/// hex sizes bounded to 15 digits, chunk extensions validated and ignored, trailers bounded and discarded.
public struct ChunkedDecoder: Sendable {
    enum State: Sendable {
        case size(digits: Int, value: UInt64)
        case sizeBWS(value: UInt64)
        case ext(value: UInt64)
        case sizeLF(value: UInt64)
        case data(remaining: UInt64)
        case dataCR
        case dataLF
        case trailerLineStart
        case trailerLine
        case trailerLF(empty: Bool)
        case done
    }

    var state: State = .size(digits: 0, value: 0)
    var trailerBytes = 0
    let maxTrailerSize: Int

    public init(maxTrailerSize: Int = 8 * 1024) {
        self.maxTrailerSize = maxTrailerSize
    }

    public var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Decodes from `buf[offset...]`.
    /// - Returns: the event and the offset to continue from.
    public mutating func next(
        _ buf: UnsafeRawBufferPointer, at offset: Int
    ) throws(HTTPParseError) -> (BodyEvent, Int) {
        var i = offset
        let n = buf.count
        while i < n {
            let c = buf[i]
            switch state {
            case .size(let digits, let value):
                if let h = ByteClass.hexValue(c) {
                    guard digits < 15 else { throw .bad("chunk size too large") }
                    state = .size(digits: digits + 1, value: value << 4 | h)
                } else {
                    guard digits > 0 else { throw .bad("invalid chunk size") }
                    switch c {
                    case 0x0D: state = .sizeLF(value: value)
                    case UInt8(ascii: ";"): state = .ext(value: value)
                    case 0x20, 0x09: state = .sizeBWS(value: value)
                    default: throw .bad("invalid chunk size")
                    }
                }
            case .sizeBWS(let value):
                // chunk-ext = *( BWS ";" BWS chunk-ext-name ... ): whitespace only before ";".
                if c == UInt8(ascii: ";") {
                    state = .ext(value: value)
                } else if c != 0x20 && c != 0x09 {
                    throw .bad("invalid chunk size line")
                }
            case .ext(let value):
                if c == 0x0D {
                    state = .sizeLF(value: value)
                } else if !ByteClass.fieldValue[Int(c)] {
                    throw .bad("invalid chunk extension")
                }
            case .sizeLF(let value):
                guard c == 0x0A else { throw .bad("bare CR in a chunk size line") }
                state = value == 0 ? .trailerLineStart : .data(remaining: value)
            case .data(let remaining):
                let avail = UInt64(n - i)
                if avail >= remaining {
                    let e = i + Int(remaining)
                    state = .dataCR
                    return (.data(i..<e), e)
                }
                state = .data(remaining: remaining - avail)
                return (.data(i..<n), n)
            case .dataCR:
                guard c == 0x0D else { throw .bad("chunk data not followed by CRLF") }
                state = .dataLF
            case .dataLF:
                guard c == 0x0A else { throw .bad("chunk data not followed by CRLF") }
                state = .size(digits: 0, value: 0)
            case .trailerLineStart:
                if c == 0x0D {
                    state = .trailerLF(empty: true)
                } else if c == 0x0A {
                    // RFC 9112 §7.1 frames chunks with CRLF; the §2.2 leniency for a bare LF is not taken inside a
                    // body, where two readers that disagree on its end are a smuggling vector: refused at once.
                    throw .bad("bare LF in chunked framing")
                } else if c == 0x20 || c == 0x09 {
                    throw .bad("obs-fold in chunked trailer")
                } else {
                    state = .trailerLine
                }
            case .trailerLine:
                if c == 0x0D {
                    state = .trailerLF(empty: false)
                } else if !ByteClass.fieldValue[Int(c)] {
                    throw .bad("invalid character in chunked trailer")
                }
            case .trailerLF(let empty):
                guard c == 0x0A else { throw .bad("bare CR in chunked trailer") }
                if empty {
                    state = .done
                    return (.end, i + 1)
                }
                state = .trailerLineStart
            case .done:
                return (.end, i)
            }
            if case .trailerLine = state {
                trailerBytes += 1
                if trailerBytes > maxTrailerSize { throw HTTPParseError(431, "chunked trailer section too large") }
            }
            i += 1
        }
        if case .done = state { return (.end, i) }
        return (.needMore, i)
    }
}

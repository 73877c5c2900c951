import Testing
@testable import EtagHTTP

/// Feeds `input` to a decoder in pieces of `step` bytes; returns the body or the error status.
func decodeChunked(_ input: String, step: Int = 1000) -> Result<String, HTTPParseError> {
    var d = ChunkedDecoder(maxTrailerSize: 64)
    var body: [UInt8] = []
    let bytes = Array(input.utf8)
    var pending: [UInt8] = []
    var i = 0
    while i < bytes.count {
        pending += bytes[i..<min(i + step, bytes.count)]
        i += step
        var off = 0
        let done = pending.withUnsafeBytes { b -> Result<Bool, HTTPParseError> in
            while true {
                do throws(HTTPParseError) {
                    let (ev, next) = try d.next(b, at: off)
                    off = next
                    switch ev {
                    case .data(let r): body += b[r]
                    case .needMore: return .success(false)
                    case .end: return .success(true)
                    }
                } catch {
                    return .failure(error)
                }
            }
        }
        pending.removeFirst(off)
        switch done {
        case .failure(let e): return .failure(e)
        case .success(true): return .success(String(decoding: body, as: UTF8.self))
        case .success(false): continue
        }
    }
    return .failure(HTTPParseError(0, "incomplete"))
}

@Suite("Chunked transfer coding (RFC 9112 §7.1)")
struct ChunkedDecoderTests {
    @Test(arguments: [1, 2, 3, 7, 1000])
    func decodesInAnyPieces(_ step: Int) {
        let r = decodeChunked(
            "4\r\nWiki\r\n6;name=\"v\"\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n", step: step)
        #expect(r == .success("Wikipedia in \r\n\r\nchunks."))
    }

    @Test func upperCaseHexAndBWSBeforeExtension() {
        #expect(decodeChunked("A \t;x\r\n0123456789\r\n0\r\n\r\n") == .success("0123456789"))
    }

    @Test(arguments: [
        "x\r\nabc\r\n0\r\n\r\n",  // not hex
        "\r\n",  // no digits
        "3 \r\nabc\r\n0\r\n\r\n",  // BWS not followed by ';'
        "3\nabc\r\n0\r\n\r\n",  // bare LF after size
        "3\rabc\r\n0\r\n\r\n",  // bare CR
        "3\r\nabcd\r\n0\r\n\r\n",  // data longer than the size
        "1000000000000000\r\n",  // 16 hex digits
        "3;\u{1}\r\nabc\r\n0\r\n\r\n",  // control char in extension
        "0\r\n folded\r\n\r\n",  // obs-fold in trailer
        "0\r\n\n",  // bare LF ending the trailer section: refused at once, not waited on
        "3\r\nabc\r\n0\r\n\nGET / HTTP/1.1\r\n",
    ])
    func malformedIsRejected(_ input: String) {
        guard case .failure(let e) = decodeChunked(input) else {
            Issue.record("accepted \(input.debugDescription)")
            return
        }
        #expect(e.status == 400)
    }

    @Test func trailerSectionIsBounded() {
        let r = decodeChunked("0\r\nX: \(String(repeating: "a", count: 100))\r\n\r\n")
        guard case .failure(let e) = r else {
            Issue.record("accepted an oversized trailer")
            return
        }
        #expect(e.status == 431)
    }

    @Test func encoderHeaders() {
        #expect(ChunkedEncoder.header(0) == Array("0\r\n".utf8))
        #expect(ChunkedEncoder.header(255) == Array("ff\r\n".utf8))
        #expect(ChunkedEncoder.header(65536) == Array("10000\r\n".utf8))
    }

    /// `remainingLength` says how many next bytes are body for a length-delimited body only (what may be read
    /// straight into held storage), and 0 once it is done.
    @Test(arguments: [
        (ResponseFraming.length(10), [4, 6], [10, 6, 0] as [UInt64?]),
        (.length(0), [], [0]),
        (.chunked, [], [nil]),
        (.untilClose, [], [nil]),
        (.none, [], [0]),
    ])
    func remainingLengthTracksALengthDelimitedBody(
        framing: ResponseFraming, pieces: [Int], expected: [UInt64?]
    )
        throws
    {
        var d = BodyDecoder(response: framing, maxTrailerSize: 64)
        var seen = [d.remainingLength]
        for n in pieces {
            let bytes = [UInt8](repeating: 1, count: n)
            _ = try bytes.withUnsafeBytes { try d.next($0, at: 0) }
            seen.append(d.remainingLength)
        }
        #expect(seen == expected)
    }
}

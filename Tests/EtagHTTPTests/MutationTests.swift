import Testing
import TestSupport
@testable import EtagHTTP

/// Mutated messages (flipped, inserted, deleted, duplicated bytes; truncation) never crash the parsers, and
/// whatever they accept keeps the invariants the proxy relies on. Bounded: a few thousand cases, well under a second.
@Suite("Mutated input")
struct MutationTests {
    static let requests = [
        "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nIf-None-Match: \"abc\", W/\"d\"\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\nConnection: keep-alive, x-hop\r\n\r\nhello",
        "PUT http://h/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "OPTIONS * HTTP/1.0\r\nX-Long: " + String(repeating: "v", count: 40) + "\t tail \r\n\r\n",
    ]
    static let responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nCache-Control: max-age=60\r\nVary: Accept\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
        "HTTP/1.0 304 Not Modified\r\nETag: \"x\"\r\nConnection: close\r\n\r\n",
    ]

    /// Accepted heads: every range inside the bytes, names are tokens, values hold no CR, LF or NUL.
    static func checkFields(_ h: FieldBlock) {
        for f in h.fields {
            #expect(f.name.lowerBound >= 0 && f.value.upperBound <= h.bytes.count && !f.name.isEmpty)
            #expect(h.bytes[f.name].allSatisfy { ByteClass.token[Int($0)] })
            #expect(!h.bytes[f.value].contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 })
        }
    }

    @Test func requestsNeverCrashTheParser() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        var storage = FieldBlock.empty
        var accepted = 0
        for k in 0..<3000 {
            let raw = Mutation.mutate(Self.requests[k % Self.requests.count], &rng)
            let (fresh, reused) = raw.withUnsafeBytes {
                b -> (
                    Result<HeadParseResult<RequestHead>, HTTPParseError>,
                    Result<HeadParseResult<RequestHead>, HTTPParseError>
                ) in
                func run(_ s: inout FieldBlock) -> Result<HeadParseResult<RequestHead>, HTTPParseError> {
                    do throws(HTTPParseError) {
                        return .success(try RequestParser.parse(b, limits: HTTPLimits(), storage: &s))
                    } catch { return .failure(error) }
                }
                var own = FieldBlock.empty
                return (run(&own), run(&storage))
            }
            switch (fresh, reused) {
            case (.success(.complete(let a, let used)), .success(.complete(let b, let usedB))):
                accepted += 1
                #expect(used == usedB && used <= raw.count)
                #expect(a.head.bytes == b.head.bytes && a.head.fields == b.head.fields, "reused storage parses alike")
                #expect(
                    a.pathRange.upperBound <= a.head.bytes.count
                        && a.hostRange.map { $0.upperBound <= a.head.bytes.count } ?? true)
                Self.checkFields(a.head)
                // A body that follows is framed one way only.
                if a.framing == .chunked { #expect(a.head.firstValue("content-length") == nil) }
            case (.success(.incomplete), .success(.incomplete)):
                break
            case (.failure(let e), .failure(let f)):
                #expect(e.status == f.status && [400, 405, 417, 431, 501, 505].contains(e.status), "\(e)")
            default:
                Issue.record("fresh and reused storage disagree on case \(k)")
            }
        }
        #expect(accepted > 100, "the mutations leave enough valid requests to check")
    }

    @Test func responsesAndBodiesNeverCrashTheDecoders() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        for k in 0..<3000 {
            let raw = Mutation.mutate(Self.responses[k % Self.responses.count], &rng)
            raw.withUnsafeBytes { b in
                do throws(HTTPParseError) {
                    guard
                        case .complete(let h, let used) = try ResponseParser.parse(
                            b, requestMethod: .get, limits: HTTPLimits())
                    else { return }
                    Self.checkFields(h.head)
                    var body = BodyDecoder(response: h.framing, maxTrailerSize: 1024)
                    var at = used
                    var steps = 0
                    while steps < 64 {
                        steps += 1
                        let (event, next) = try body.next(b, at: at)
                        #expect(next >= at && next <= b.count)
                        if case .data(let r) = event { #expect(r.lowerBound >= at && r.upperBound <= b.count) }
                        if event == .end || event == .needMore { break }
                        at = next
                    }
                } catch {
                    #expect(error.status == 502 || error.status == 400, "\(error)")
                }
            }
        }
    }
}

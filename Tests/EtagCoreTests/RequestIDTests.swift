import EtagCore
import EtagHTTP
import Testing

@Suite("X-Request-Id: kept when valid, made otherwise")
struct RequestIDTests {
    func head(_ raw: String) throws -> RequestHead {
        let bytes = Array(raw.utf8)
        guard
            case .complete(let h, _) = try bytes.withUnsafeBytes({ try RequestParser.parse($0, limits: HTTPLimits()) })
        else { throw RequestParseFailed() }
        return h
    }
    struct RequestParseFailed: Error {}

    @Test(arguments: [
        ("X-Request-Id: abc-123\r\n", "abc-123"),
        ("x-request-id: A_b.c:d/e\r\n", "A_b.c:d/e"),
        ("X-Request-Id: first\r\nX-Request-Id: second\r\n", "first"),
        ("X-Request-Id: \(String(repeating: "z", count: 128))\r\n", String(repeating: "z", count: 128)),
    ])
    func kept(field: String, id: String) throws {
        let h = try head("GET / HTTP/1.1\r\nHost: a\r\n\(field)\r\n")
        let r = try #require(RequestID.clientValue(h))
        #expect(h.head.string(r) == id)
    }

    @Test(arguments: [
        "", "X-Request-Id: \(String(repeating: "z", count: 129))\r\n", "X-Request-Id: a b\r\n", "X-Request-Id:\r\n",
        "X-Request-Id: caf\u{e9}\r\n",
    ])
    func replaced(field: String) throws {
        let h = try head("GET / HTTP/1.1\r\nHost: a\r\n\(field)\r\n")
        #expect(RequestID.clientValue(h) == nil)
    }

    @Test func generatedIdsCountUpInHex() {
        let g = RequestIDGenerator(seed: 0x0123_4567_89ab_cdef)
        var id: [UInt8] = []
        g.next(into: &id)
        #expect(String(decoding: id, as: UTF8.self) == "X-Request-Id: 0123456789abcdef0000000000000001\r\n")
        for _ in 0..<14 { g.next(into: &id) }
        #expect(String(decoding: RequestID.id(ofLine: id), as: UTF8.self) == "0123456789abcdef000000000000000f")
        let held = id  // a caller keeps an earlier id: it is not changed by the next one
        g.next(into: &id)
        #expect(String(decoding: RequestID.id(ofLine: id), as: UTF8.self) == "0123456789abcdef0000000000000010")
        #expect(String(decoding: RequestID.id(ofLine: held), as: UTF8.self) == "0123456789abcdef000000000000000f")
        for _ in 0..<240 { g.next(into: &id) }
        #expect(String(decoding: RequestID.id(ofLine: id), as: UTF8.self) == "0123456789abcdef0000000000000100")
    }
}

import Testing
@testable import EtagHTTP

/// A connection parses head after head into one `FieldBlock` (`storage:`): the memory is reused, and a head
/// still held elsewhere keeps its own bytes (value semantics).
@Suite("Head storage reuse")
struct HeadStorageTests {
    private func parse(_ s: String, into storage: inout FieldBlock) throws -> RequestHead {
        let bytes = Array(s.utf8)
        let r = bytes.withUnsafeBytes { b -> Result<HeadParseResult<RequestHead>, HTTPParseError> in
            do throws(HTTPParseError) {
                return .success(try RequestParser.parse(b, limits: HTTPLimits(), storage: &storage))
            } catch {
                return .failure(error)
            }
        }
        guard case .complete(let h, _) = try r.get() else { throw HTTPParseError(0, "incomplete") }
        return h
    }

    @Test func aHeldHeadIsNotOverwrittenByTheNextParse() throws {
        var storage = FieldBlock.empty
        let first = try parse("GET /first HTTP/1.1\r\nHost: a\r\nX-One: 1\r\n\r\n", into: &storage)
        let second = try parse("PUT /second/longer HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n", into: &storage)
        #expect(first.head.string(first.pathRange) == "/first")
        #expect(first.head.fields.count == 2)
        #expect(first.head.firstValue("x-one").map { first.head.string($0) } == "1")
        #expect(second.head.string(second.pathRange) == "/second/longer")
        #expect(second.head.firstValue("host").map { second.head.string($0) } == "b")
        #expect(second.head.fields.count == 2)
    }

    @Test func aReleasedHeadLendsItsMemoryToTheNext() throws {
        var storage = FieldBlock.empty
        var held: RequestHead? = try parse("GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", into: &storage)
        let address = storage.bytes.withUnsafeBufferPointer { $0.baseAddress }
        held = nil
        let next = try parse("GET /b HTTP/1.1\r\nHost: c\r\n\r\n", into: &storage)
        #expect(held == nil)
        #expect(next.head.bytes.withUnsafeBufferPointer { $0.baseAddress } == address, "no new allocation")
        #expect(next.head.string(next.pathRange) == "/b")
        #expect(next.head.fields.count == 1)
    }

    @Test func anErrorLeavesTheStorageUsable() throws {
        var storage = FieldBlock.empty
        #expect(throws: HTTPParseError.self) {
            _ = try parse("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", into: &storage)
        }
        let h = try parse("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", into: &storage)
        #expect(h.head.string(h.pathRange) == "/ok")
    }
}

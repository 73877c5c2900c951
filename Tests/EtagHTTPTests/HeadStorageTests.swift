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

/// `equalsLowercase`: case-insensitive, whole-range, for the names and tokens the proxy compares.
@Suite("Case-insensitive name comparison")
struct EqualsLowercaseTests {
    @Test(arguments: [
        ("ETag", "etag", true), ("etag", "etag", true), ("ETAG ", "etag", false), ("etah", "etag", false),
        ("Content-Length", "content-length", true), ("CONTENT-LENGTH", "content-length", true),
        ("Content_Length", "content-length", false), ("Content-Lengti", "content-length", false),
        ("Transfer-Encoding", "transfer-encoding", true), ("Transfer-Encodinf", "transfer-encoding", false),
        ("If-Unmodified-Since", "if-unmodified-since", true), ("If-Unmodified-Sincf", "if-unmodified-since", false),
        ("X-Request-ID", "x-request-id", true), ("100-Continue", "100-continue", true),
        ("100-continuE", "100-continue", true), ("101-continue", "100-continue", false), ("", "te", false),
        ("TE", "te", true), ("Keep-Alive", "keep-alive", true), ("Keep Alive", "keep-alive", false),
    ])
    func comparesWholeNamesIgnoringCase(field: String, name: StaticString, equal: Bool) {
        let bytes = Array(("x" + field + "y").utf8)  // the range sits inside a larger buffer
        bytes.withUnsafeBytes { b in
            #expect(b.equalsLowercase(1..<(1 + field.utf8.count), name) == equal)
        }
    }
}

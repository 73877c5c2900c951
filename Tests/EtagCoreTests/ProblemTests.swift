import Foundation
import Testing
@testable import EtagCore

@Suite("problem+json error bodies (RFC 9457) and HTTP dates (RFC 9110 §5.6.7)")
struct ProblemTests {
    @Test func bodyHasTheStandardMembers() {
        let p = Problem(status: 502, detail: "the upstream said \"no\"\n")
        let text = String(decoding: p.body, as: UTF8.self)
        #expect(
            text
                == "{\"type\":\"about:blank\",\"title\":\"Bad Gateway\",\"status\":502,\"detail\":\"the upstream said \\\"no\\\"\\n\"}\n"
        )
    }

    @Test func responseCarriesTypeLengthAndClose() {
        let r = String(
            decoding: Problem(status: 431, detail: "x").response(close: true, date: Array("D".utf8)), as: UTF8.self)
        #expect(r.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(r.contains("Content-Type: application/problem+json\r\n"))
        #expect(r.contains("Connection: close\r\n"))
        let body = r.components(separatedBy: "\r\n\r\n")[1]
        #expect(r.contains("Content-Length: \(body.utf8.count)\r\n"))
    }

    @Test func imfFixdate() {
        #expect(
            String(decoding: HTTPDate.format(epochSeconds: 784_111_777), as: UTF8.self)
                == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(String(decoding: HTTPDate.format(epochSeconds: 0), as: UTF8.self) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(
            String(decoding: HTTPDate.format(epochSeconds: 1_709_210_096), as: UTF8.self)
                == "Thu, 29 Feb 2024 12:34:56 GMT")
    }
}

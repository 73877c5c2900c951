import EtagCore
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue #10, fault runs: an upstream that misbehaves in every way a probe tried, and clients that do. Each fault
/// gets a clear status (or a cut connection, never a short body passed off as whole), the proxy keeps running,
/// and the next client — on the same proxy, through the same upstream pool — is served correctly.
@Suite("Fault injection: a misbehaving upstream and misbehaving clients", .serialized)
struct FaultInjectionTests {
    struct Fault: CustomTestStringConvertible, Sendable {
        let name: String
        let reply: [UInt8]
        let close: Bool
        /// The status the client must get.
        let status: Int
        var testDescription: String { name }
    }

    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    static let faults: [Fault] = [
        Fault(
            name: "garbage instead of a status line", reply: Array("SSH-2.0-OpenSSH\r\n\r\n".utf8), close: true,
            status: 502),
        Fault(
            name: "a status code that is not three digits",
            reply: Array("HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n".utf8), close: true, status: 502),
        Fault(
            name: "closed in the middle of the head", reply: Array("HTTP/1.1 200 OK\r\nContent-Le".utf8), close: true,
            status: 502),
        Fault(
            name: "a head larger than limits.max_upstream_header_size",
            reply: Array(
                ("HTTP/1.1 200 OK\r\n"
                    + String(repeating: "X-Pad: " + String(repeating: "p", count: 1000) + "\r\n", count: 80)
                    + "Content-Length: 2\r\n\r\nok").utf8),
            close: true, status: 502),
        Fault(
            name: "two different Content-Lengths",
            reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!".utf8), close: true,
            status: 502),
        Fault(
            name: "Content-Length and chunked together",
            reply: Array(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".utf8),
            close: true, status: 502),
        Fault(
            name: "a body shorter than its Content-Length",
            reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort".utf8), close: true, status: 502),
        Fault(
            name: "an invalid chunk size",
            reply: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n".utf8),
            close: true, status: 502),
        Fault(
            name: "101 Switching Protocols nobody asked for",
            reply: Array(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\u{81}\u{02}hi"
                    .utf8),
            close: true, status: 502),
        Fault(
            name: "a flood of 1xx interim responses",
            reply: Array((String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: 5000) + ok).utf8), close: true,
            status: 502),
        Fault(
            name: "a few 1xx interim responses, then the answer",
            reply: Array((String(repeating: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", count: 3) + ok).utf8),
            close: false, status: 200),
        Fault(
            name: "a body longer than its Content-Length (the rest is not an answer)",
            reply: Array((ok + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale").utf8), close: false, status: 200),
    ]

    @Test(arguments: faults)
    func aMisbehavingUpstreamGetsAClearAnswerAndTheNextClientIsServed(_ fault: Fault) throws {
        let faulty = Shared(true)
        let up = try TestUpstream { req in
            if req.target == "/fault" && faulty.get { return .raw(fault.reply, close: fault.close) }
            return .respond(status: 200, headers: [], body: Array("good \(req.target)".utf8))
        }
        let proxy = try ProxyHarness(upstream: up) { $0.limits.maxUpstreamHeaderSize = 16 * 1024 }
        defer { proxy.stop() }
        let r = try proxy.request("GET /fault HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == fault.status, "\(fault.name): \(r.status) \(r.bodyText)")
        if fault.status == 200 { #expect(r.bodyText == "ok") }
        if fault.status == 502 { #expect(r.header("Content-Type") == "application/problem+json") }
        // Everyone after is served, over whatever the pool kept: the right body for the right request.
        let c = try proxy.connect()
        defer { c.close() }
        for i in 0..<3 {
            c.send("GET /next\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            let next = c.response()
            #expect(next?.status == 200 && next?.bodyText == "good /next\(i)", "\(fault.name): request \(i) after")
        }
    }

    /// Thousands of clients that connect and drop, others that abort mid-request or mid-response: the proxy
    /// serves a well-behaved client meanwhile and after, and keeps no connection of theirs.
    @Test func connectAndDropFloodsAndAbortsLeaveOthersServed() throws {
        let big = [UInt8](repeating: UInt8(ascii: "b"), count: 1 << 20)
        let up = try TestUpstream { req in
            .respond(status: 200, headers: [], body: req.target == "/big" ? big : Array("fine".utf8))
        }
        let proxy = try ProxyHarness(upstream: up) { $0.workers = 2 }
        defer { proxy.stop() }
        let failures = Shared(0)
        DispatchQueue.concurrentPerform(iterations: 4) { k in
            for i in 0..<500 {
                guard let fd = try? Sockets.connect(port: proxy.port, timeout: 5) else {
                    failures.update { $0 += 1 }
                    continue
                }
                switch (i + k) % 4 {
                case 0: break  // connect and drop
                case 1:  // abort mid-request
                    let partial = Array("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n{\"half".utf8)
                    _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                case 2:  // abort mid-response: read a little of a 1 MiB body, then reset
                    let req = Array("GET /big HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
                    _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    var buf = [UInt8](repeating: 0, count: 1000)
                    _ = read(fd, &buf, buf.count)
                    var lin = linger(l_onoff: 1, l_linger: 0)
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, socklen_t(MemoryLayout<linger>.size))
                default:  // a head cut short
                    let partial = Array("GET /x HTTP/1.1\r\nHo".utf8)
                    _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                close(fd)
                if i % 100 == 0, (try? proxy.request("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n").bodyText) != "fine" {
                    failures.update { $0 += 1 }
                }
            }
        }
        #expect(failures.get == 0, "a well-behaved client was not served during the flood")
        let r = try proxy.request("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(r.status == 200 && r.body.count == big.count, "a whole body after the flood")
        // Every flood connection is gone within the client timeouts (aborts end at once; cut heads by EOF).
        let deadline = Date().addingTimeInterval(5)
        func open() -> UInt64 { proxy.server.metricsSnapshot()[MetricsLayout.level(.clientConnections)] }
        while open() > 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(open() == 0, "\(open()) client connections still open")
    }
}

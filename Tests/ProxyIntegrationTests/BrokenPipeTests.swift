import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A client that vanishes while its answer is being written: the proxy's next write to that socket is an EPIPE,
/// which must end that connection only — never the process it runs in (an in-process server, as here, too).
@Suite("A write to a vanished client is an error for its connection, not a signal for the process")
struct BrokenPipeTests {
    @Test func aClientResetMidAnswerLeavesTheProcessServing() throws {
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 6 * 1024 * 1024)
        let up = try TestUpstream { _ in .respond(status: 200, headers: [], body: big) }
        let proxy = try ProxyHarness(upstream: up) { $0.ioUring = false }  // writes through write(2)
        defer { proxy.stop() }
        for _ in 0..<5 {
            let c = try RawClient(port: proxy.port, receiveBuffer: 4096)
            c.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            shutdown(c.fd, Int32(SHUT_WR))  // FIN first: the proxy's side is then in CLOSE_WAIT…
            _ = c.reader.fill()  // the answer has started
            c.reset()  // …where a reset makes its next write fail with EPIPE (tcp_reset)
            Thread.sleep(forTimeInterval: 0.1)
        }
        let r = try proxy.request("GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(r.status == 200)
        #expect(r.body.count == big.count)
    }
}

internal import CLibUV
import EtagCache
import EtagCore
import EtagHTTP
import Foundation
import Testing
import TestSupport
@testable import EtagServer

/// Drives one worker's exchanges in-process, without sockets (SwiftNIO's EmbeddedChannel role): clients and the
/// upstream are `MemoryPeer`s, the worker's libuv loop runs on the test's thread, turn by turn, until nothing
/// moves. The exchange code under test is the production code — connection framing, exchanges, the upstream
/// client and its parser, the shared-memory cache and leases; only the sockets are replaced. Each request that
/// reaches the upstream is answered by the script (`handler`), or held for the test to answer later.
///
/// Single thread: the driver, the loop and every connection live on the test's thread.
final class ExchangeDriver {
    enum Reply {
        /// A response with Content-Length (left out for 204 and 304).
        case respond(Int, [(String, String)], [UInt8])
        /// Exact bytes; then the upstream closes when `close`.
        case raw([UInt8], close: Bool)
        /// The upstream closes without answering.
        case close
        /// The upstream resets the connection.
        case reset
        /// Not answered now: `answerHeld` answers it.
        case hold
    }

    let worker: Worker
    let upstream = MemoryUpstream()
    var metrics: WorkerMetrics { worker.metrics }
    var handler: (HTTPMessage) -> Reply
    /// Every request that reached the upstream, in order.
    private(set) var upstreamRequests: [HTTPMessage] = []
    private var held: [(peer: MemoryPeer, request: HTTPMessage)] = []
    private var upstreamBuffers: [ObjectIdentifier: [UInt8]] = [:]
    private let regionName = uniqueRegionName()
    private let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)

    static func echo(_ req: HTTPMessage) -> Reply {
        let body =
            req.body.isEmpty ? Array("{\"method\":\"\(req.method)\",\"target\":\"\(req.target)\"}".utf8) : req.body
        return .respond(200, [("Content-Type", "application/json")], body)
    }

    init(
        _ configure: (inout ProxyConfig) -> Void = { _ in }, handler: @escaping (HTTPMessage) -> Reply = echo
    )
        throws
    {
        var config = ProxyConfig()
        config.accessLog = .off
        config.cache.size = 1024 * 1024
        config.timeouts.shutdownGrace = 0
        configure(&config)
        self.handler = handler
        worker = try Worker(
            index: 0, config: config, settings: ExchangeSettings(config: config), listen: nil,
            accessLog: AccessLog(format: .text, enabled: false, sink: nil),
            notModifiedFields: NotModifiedFieldsMemo())
        worker.exchanges.cache = try SharedCache(name: regionName, size: config.cache.size)
        worker.pool.memoryUpstream = upstream
        uv_timer_init(worker.loop, timer)
    }

    /// A new client connection.
    func connect() -> DrivenClient {
        let peer = MemoryPeer()
        let c = ClientConnection(worker: worker)
        c.memoryPeer = peer
        peer.connection = c
        worker.adopt(c)
        run()
        return DrivenClient(peer: peer, driver: self)
    }

    /// Runs the loop turn by turn, answering the upstream's requests, until three turns in a row move nothing
    /// and no timer is due within 2 ms (what the code means by "next loop turn": a 0 ms timer is a 1 ms one).
    func run() {
        var quiet = 0
        var turns = 0
        while turns < 10_000 {
            let soon = uv_backend_timeout(worker.loop)
            if soon >= 0 && soon <= 2 {
                // Wait for that timer, never longer: a turn that runs a due timer then polls until the next one.
                onceBounded(ms: UInt64(max(soon, 1)))
            } else {
                uv_run(worker.loop, UV_RUN_NOWAIT)
            }
            quiet = serveUpstream() ? 0 : quiet + 1
            turns += 1
            if quiet >= 3 {
                let next = uv_backend_timeout(worker.loop)
                if next < 0 || next > 2 { break }
            }
        }
    }

    /// Lets `ms` of loop time pass (timers fire as they fall due), answering the upstream meanwhile.
    func advance(ms: Int) {
        let until = uv_now(worker.loop) + UInt64(ms)
        while uv_now(worker.loop) < until {
            onceBounded(ms: max(until - uv_now(worker.loop), 1))
            run()
        }
    }

    /// One loop turn that waits for the next timer, at most `ms`. The guard timer is set from the current time
    /// (the loop's cached time may be stale, and a guard already due would not bound the poll that follows).
    private func onceBounded(ms: UInt64) {
        uv_update_time(worker.loop)
        uv_timer_start(timer, { _ in }, ms, 0)
        uv_run(worker.loop, UV_RUN_ONCE)
        uv_timer_stop(timer)
    }

    /// Answers the oldest held request.
    func answerHeld(_ reply: Reply) {
        guard !held.isEmpty else { return }
        let (peer, _) = held.removeFirst()
        perform(reply, on: peer)
        run()
    }

    var heldCount: Int { held.count }

    /// Reads what every upstream connection sent, answers complete requests; whether anything moved.
    private func serveUpstream() -> Bool {
        var moved = false
        for peer in upstream.peers {
            let bytes = peer.takeReceived()
            let id = ObjectIdentifier(peer)
            if bytes.isEmpty && upstreamBuffers[id] == nil { continue }
            var buf = upstreamBuffers[id, default: []] + bytes
            if !bytes.isEmpty { moved = true }
            while let req = MessageSplitter.request(from: &buf) {
                moved = true
                upstreamRequests.append(req)
                let reply = handler(req)
                if case .hold = reply { held.append((peer, req)) } else { perform(reply, on: peer) }
            }
            upstreamBuffers[id] = buf.isEmpty ? nil : buf
        }
        return moved
    }

    private func perform(_ reply: Reply, on peer: MemoryPeer) {
        switch reply {
        case .respond(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Status")\r\n"
            for (n, v) in headers { head += "\(n): \(v)\r\n" }
            let framed = headers.contains { ["content-length", "transfer-encoding"].contains($0.0.lowercased()) }
            if !framed && status != 204 && status != 304 { head += "Content-Length: \(body.count)\r\n" }
            peer.send(Array((head + "\r\n").utf8) + body)
        case .raw(let bytes, let close):
            peer.send(bytes)
            if close { peer.sendEOF() }
        case .close:
            peer.sendEOF()
        case .reset:
            peer.reset()
        case .hold:
            break
        }
    }

    /// Closes every connection and the loop; the worker's handles must all close.
    func shutdown() {
        uv_close(UnsafeMutableRawPointer(timer).assumingMemoryBound(to: uv_handle_t.self), nil)
        worker.beginDrain()
        worker.graceExpired()
        var turns = 0
        while uv_loop_alive(worker.loop) != 0 && turns < 1000 {
            uv_run(worker.loop, UV_RUN_NOWAIT)
            turns += 1
        }
        #expect(uv_loop_alive(worker.loop) == 0, "a handle is still open after every connection closed")
        if uv_loop_alive(worker.loop) == 0 {
            worker.run()  // returns at once, closes the loop
            timer.deallocate()
        }
        SharedCache.unlink(name: regionName)
    }
}

/// One client of the driver: what it sends arrives as if read from a socket; what the proxy writes is parsed
/// back into responses.
final class DrivenClient {
    let peer: MemoryPeer
    unowned let driver: ExchangeDriver
    private var buffer: [UInt8] = []

    init(peer: MemoryPeer, driver: ExchangeDriver) {
        self.peer = peer
        self.driver = driver
    }

    /// Sends bytes; `run: false` leaves the loop unturned, so that several clients' requests are in flight at once.
    func send(_ text: String, run: Bool = true) { send(Array(text.utf8), run: run) }

    func send(_ bytes: [UInt8], run: Bool = true) {
        peer.send(bytes)
        if run { driver.run() }
    }

    /// The next complete response written so far (nil if none); `head` for a response to HEAD.
    func response(head: Bool = false) -> HTTPMessage? {
        buffer += peer.takeReceived()
        return MessageSplitter.response(from: &buffer, toHEAD: head, closed: peer.connectionClosed)
    }

    /// Sends a request and returns its response.
    func request(_ raw: String, head: Bool = false) -> HTTPMessage? {
        send(raw)
        return response(head: head)
    }

    /// Bytes written and not parsed as a response.
    var unparsed: [UInt8] {
        buffer += peer.takeReceived()
        return buffer
    }

    /// The proxy closed this connection.
    var isClosed: Bool { peer.connectionClosed }

    /// The client closes its side.
    func sendEOF() {
        peer.sendEOF()
        driver.run()
    }
}

/// Complete HTTP/1.1 messages out of a byte buffer, for the driver's two ends; nothing is taken from the buffer
/// until a whole message is there.
enum MessageSplitter {
    static func request(from buf: inout [UInt8]) -> HTTPMessage? {
        guard let headEnd = find(buf, [13, 10, 13, 10], from: 0) else { return nil }
        var msg = message(Array(buf[0..<headEnd + 4]))
        guard let (body, used) = body(buf, from: headEnd + 4, of: msg, untilClose: false, closed: false) else {
            return nil
        }
        msg.body = body
        buf.removeFirst(used)
        return msg
    }

    static func response(from buf: inout [UInt8], toHEAD: Bool, closed: Bool) -> HTTPMessage? {
        var start = 0
        while true {
            guard let headEnd = find(buf, [13, 10, 13, 10], from: start) else { return nil }
            var msg = message(Array(buf[start..<headEnd + 4]))
            if msg.status >= 100 && msg.status < 200 {  // interim: skip
                start = headEnd + 4
                continue
            }
            if toHEAD || msg.status == 204 || msg.status == 304 {
                buf.removeFirst(headEnd + 4)
                return msg
            }
            guard let (body, used) = body(buf, from: headEnd + 4, of: msg, untilClose: true, closed: closed) else {
                return nil
            }
            msg.body = body
            buf.removeFirst(used)
            return msg
        }
    }

    private static func message(_ head: [UInt8]) -> HTTPMessage {
        let (start, headers) = HTTPMessage.parseHead(head)
        return HTTPMessage(startLine: start, headers: headers, body: [])
    }

    /// The body after `at` and where the message ends, or nil when it is not all there yet.
    private static func body(
        _ buf: [UInt8], from at: Int, of msg: HTTPMessage, untilClose: Bool, closed: Bool
    )
        -> ([UInt8], Int)?
    {
        if msg.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            var body: [UInt8] = []
            var i = at
            while true {
                guard let lineEnd = find(buf, [13, 10], from: i) else { return nil }
                let line = String(decoding: buf[i..<lineEnd], as: UTF8.self)
                guard let size = Int(line.split(separator: ";").first.map(String.init) ?? "", radix: 16) else {
                    return nil
                }
                i = lineEnd + 2
                if size == 0 {
                    while true {  // trailer fields up to the empty line
                        guard let end = find(buf, [13, 10], from: i) else { return nil }
                        let empty = end == i
                        i = end + 2
                        if empty { return (body, i) }
                    }
                }
                guard buf.count >= i + size + 2 else { return nil }
                body += buf[i..<i + size]
                i += size + 2
            }
        }
        if let n = msg.header("content-length").flatMap({ Int($0) }) {
            guard buf.count >= at + n else { return nil }
            return (Array(buf[at..<at + n]), at + n)
        }
        if untilClose {
            guard closed else { return nil }
            return (Array(buf[at...]), buf.count)
        }
        return ([], at)
    }

    private static func find(_ buf: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
        guard buf.count >= needle.count, from <= buf.count - needle.count else { return nil }
        for i in from...(buf.count - needle.count) where buf[i] == needle[0] {
            if Array(buf[i..<i + needle.count]) == needle { return i }
        }
        return nil
    }
}

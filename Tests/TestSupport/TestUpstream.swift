import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An upstream server for tests: blocking sockets on 127.0.0.1, one thread per connection, a handler that
/// decides each reply. It records every request it receives and counts connections.
public final class TestUpstream: @unchecked Sendable {
    public enum Reply: Sendable {
        case respond(status: Int, headers: [(String, String)], body: [UInt8])
        /// Exact bytes; then close the connection when `close`.
        case raw([UInt8], close: Bool)
        /// Wait, then reply.
        indirect case delay(Double, Reply)
        /// Close without answering.
        case close
        /// A chunked response made of these chunks.
        case chunked(status: Int, headers: [(String, String)], chunks: [[UInt8]])
    }

    /// Where and how a request came: its connection (1-based, in accept order), and whether its first bytes were
    /// already here before the answer to the request ahead of it went out (sent pipelined, RFC 9112 §9.3.2).
    public struct Arrival: Sendable, Equatable {
        public let connection: Int
        public let pipelined: Bool
    }

    public let port: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var _requests: [HTTPMessage] = []
    private var _arrivals: [Arrival] = []
    private var _connections = 0
    private var fds: Set<Int32> = []
    private var stopped = false
    private let handler: @Sendable (HTTPMessage) -> Reply

    /// On every connection, the request with this number (1-based) is read and then the connection is closed
    /// without an answer — how a keep-alive connection dies under a proxy that just reused it.
    private let dropRequestNumber: Int?
    /// Serves https with this context (nil: plaintext).
    public let tls: TestTLSServer?

    public init(
        dropRequestNumber: Int? = nil, tls: TestTLSServer? = nil,
        handler: @escaping @Sendable (HTTPMessage) -> Reply = TestUpstream.echo
    ) throws {
        self.dropRequestNumber = dropRequestNumber
        self.tls = tls
        let (fd, port) = try Sockets.listen()
        listenFD = fd
        self.port = port
        self.handler = handler
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    /// 200 with the request body, or a small JSON naming the method and target when there is none.
    public static let echo: @Sendable (HTTPMessage) -> Reply = { req in
        let body =
            req.body.isEmpty ? Array("{\"method\":\"\(req.method)\",\"target\":\"\(req.target)\"}".utf8) : req.body
        return .respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
    }

    public var requests: [HTTPMessage] { lock.withLock { _requests } }
    /// One per request in `requests`, in the same order.
    public var arrivals: [Arrival] { lock.withLock { _arrivals } }
    public var connections: Int { lock.withLock { _connections } }

    /// Stops listening and ends every connection. Idempotent: closing a descriptor twice could close one that a
    /// parallel test opened meanwhile under the same number.
    public func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            shutdown(listenFD, Int32(SHUT_RDWR))
            close(listenFD)
            for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if lock.withLock({ stopped }) { return }
                continue
            }
            let number = lock.withLock {
                _connections += 1
                fds.insert(fd)
                return _connections
            }
            Sockets.setTimeout(fd, 30)
            let t = Thread { [self] in serve(fd, connection: number) }
            t.start()
        }
    }

    private func serve(_ fd: Int32, connection: Int) {
        defer {
            lock.withLock { _ = fds.remove(fd) }
            close(fd)
        }
        var ssl: OpaquePointer?
        if let tls {
            guard let s = tls.accept(fd) else {
                // A lingering close, as a real server does: what the client already sent (a request behind a
                // TLS 1.3 handshake the server refused) is drained, so the close is no reset that could
                // overtake the alert on its way to the proxy.
                shutdown(fd, Int32(SHUT_WR))
                Sockets.setTimeout(fd, 1)
                var sink = [UInt8](repeating: 0, count: 4096)
                while read(fd, &sink, sink.count) > 0 {}
                return
            }
            ssl = s
        }
        defer {
            if let ssl {
                SSL_shutdown(ssl)
                SSL_free(ssl)
            }
        }
        let reader = SocketReader(fd: fd, ssl: ssl)
        var number = 0
        var nextIsPipelined = false
        while let req = reader.readRequest() {
            number += 1
            if number == dropRequestNumber { return }
            lock.withLock {
                _requests.append(req)
                _arrivals.append(Arrival(connection: connection, pipelined: nextIsPipelined))
            }
            let reply = handler(req)
            // Bytes of the next request, here before this answer goes out?
            var peek: UInt8 = 0
            nextIsPipelined =
                !reader.buffer.isEmpty || (ssl == nil && recv(fd, &peek, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 1)
            if !perform(reply, fd, ssl) { return }
            if req.header("connection")?.lowercased() == "close" { return }
        }
    }

    private func sendAll(_ fd: Int32, _ ssl: OpaquePointer?, _ bytes: [UInt8]) -> Bool {
        if let ssl { return TLSIO.writeAll(ssl, bytes) }
        return Sockets.sendAll(fd, bytes)
    }

    /// Sends a reply; false when the connection must close.
    private func perform(_ reply: Reply, _ fd: Int32, _ ssl: OpaquePointer?) -> Bool {
        switch reply {
        case .respond(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) X\r\n"
            for (n, v) in headers { head += "\(n): \(v)\r\n" }
            if !headers.contains(where: { $0.0.lowercased() == "content-length" }) && status != 204 && status != 304 {
                head += "Content-Length: \(body.count)\r\n"
            }
            head += "\r\n"
            return sendAll(fd, ssl, Array(head.utf8) + body)
        case .raw(let bytes, let close):
            return sendAll(fd, ssl, bytes) && !close
        case .delay(let s, let next):
            Thread.sleep(forTimeInterval: s)
            return perform(next, fd, ssl)
        case .close:
            return false
        case .chunked(let status, let headers, let chunks):
            var out = Array("HTTP/1.1 \(status) X\r\n".utf8)
            for (n, v) in headers { out += Array("\(n): \(v)\r\n".utf8) }
            out += Array("Transfer-Encoding: chunked\r\n\r\n".utf8)
            for c in chunks where !c.isEmpty {
                out += Array(String(c.count, radix: 16).utf8) + [13, 10] + c + [13, 10]
            }
            out += Array("0\r\n\r\n".utf8)
            return sendAll(fd, ssl, out)
        }
    }
}

import EtagCore
import EtagHTTP
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking HTTP/1.1 server for the demo, built on the project's own parser (`EtagHTTP`): one thread
/// per connection, keep-alive, Content-Length and chunked request bodies. Not the data path.
final class DemoServer: @unchecked Sendable {
    let store = PersonStore()
    let limits = HTTPLimits()

    func serve(host: String, port: Int) throws -> Never {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw DemoError("not an IPv4 address: \(host)") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0, listen(fd, 128) == 0 else { throw DemoError("cannot listen on \(host):\(port): errno \(errno)") }
        FileHandle.standardError.write(
            "etag-demo-api: persons API on http://\(host):\(port)/persons\n".data(using: .utf8)!)
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { continue }
            Thread { [self] in connection(c) }.start()
        }
    }

    private func connection(_ fd: Int32) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        while true {
            // The head.
            var parsed: (RequestHead, Int)?
            while parsed == nil {
                let result = buffer.withUnsafeBytes { b -> Result<HeadParseResult<RequestHead>, HTTPParseError> in
                    do throws(HTTPParseError) { return .success(try RequestParser.parse(b, limits: limits)) } catch {
                        return .failure(error)
                    }
                }
                switch result {
                case .failure(let e):
                    return send(fd, status: e.status, body: Data("{\"error\":\"\(e.detail)\"}\n".utf8), close: true)
                case .success(.complete(let h, let used)):
                    parsed = (h, used)
                case .success(.incomplete):
                    if !fill() { return }
                }
            }
            let (head, used) = parsed!
            buffer.removeFirst(used)
            // The body.
            var decoder = BodyDecoder(request: head.framing, maxTrailerSize: limits.maxTrailerSize)
            var body = Data()
            while !decoder.isDone {
                var off = 0
                var needMore = false
                let r = buffer.withUnsafeBytes { b -> Result<Void, HTTPParseError> in
                    do throws(HTTPParseError) {
                        while true {
                            let (ev, next) = try decoder.next(b, at: off)
                            off = next
                            switch ev {
                            case .data(let range): body.append(contentsOf: b[range])
                            case .needMore:
                                needMore = true
                                return .success(())
                            case .end: return .success(())
                            }
                        }
                    } catch { return .failure(error) }
                }
                buffer.removeFirst(off)
                if case .failure(let e) = r { return send(fd, status: e.status, body: Data(), close: true) }
                if needMore && !fill() { return }
            }
            let path = head.head.string(head.pathRange)
            let answer = store.handle(method: head.methodString, path: path, body: body)
            send(
                fd, status: answer.status, body: head.method == .head ? Data() : answer.body,
                length: answer.body.count, headers: answer.headers, close: !head.keepAlive)
            if !head.keepAlive { return }
        }
    }

    private func send(
        _ fd: Int32, status: Int, body: Data, length: Int? = nil, headers: [(String, String)] = [],
        close: Bool
    ) {
        var head = "HTTP/1.1 \(status) \(ReasonPhrase.of(status))\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if status != 204 { head += "Content-Length: \(length ?? body.count)\r\n" }
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + Array(body)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

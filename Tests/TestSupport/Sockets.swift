import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Blocking-socket helpers for tests (loopback only, every call bounded by a timeout).
public enum Sockets {
    public static func listen(port: Int = 0) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0, Glibc.listen(fd, 128) == 0 else {
            close(fd)
            throw TestError("bind/listen failed: \(errno)")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) }
        }
        return (fd, Int(UInt16(bigEndian: bound.sin_port)))
    }

    /// - Parameter receiveBuffer: SO_RCVBUF, set before connecting (a small one makes a slow reader).
    public static func connect(port: Int, timeout: Double = 10, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw TestError("connect to \(port) failed: \(errno)")
        }
        setTimeout(fd, timeout)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    public static func setTimeout(_ fd: Int32, _ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    @discardableResult
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }
}

public struct TestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Reads from a socket into a buffer, with the small parsing a test needs.
public final class SocketReader {
    public let fd: Int32
    /// Reads through TLS on the socket when set.
    let ssl: OpaquePointer?
    public var buffer: [UInt8] = []
    public private(set) var closed = false

    public init(fd: Int32, ssl: OpaquePointer? = nil) {
        self.fd = fd
        self.ssl = ssl
    }

    /// Reads once more; false on EOF, error or timeout.
    @discardableResult
    public func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { b in
            if let ssl {
                Int(SSL_read(ssl, b.baseAddress, Int32(b.count)))
            } else {
                recv(fd, b.baseAddress, b.count, 0)
            }
        }
        if n <= 0 {
            closed = true
            return false
        }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Bytes up to and including the first empty line, or nil when the peer stops first.
    public func readHead() -> [UInt8]? {
        while true {
            if let r = findCRLFCRLF() {
                let head = Array(buffer[0..<r])
                buffer.removeFirst(r)
                return head
            }
            if !fill() { return nil }
        }
    }

    public func readExactly(_ n: Int) -> [UInt8]? {
        while buffer.count < n { if !fill() { return nil } }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    public func readLine() -> [UInt8]? {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[0..<(i + 1)])
                buffer.removeFirst(i + 1)
                return line
            }
            if !fill() { return nil }
        }
    }

    /// Everything until the peer closes (or the timeout).
    public func readToEnd() -> [UInt8] {
        while fill() {}
        let out = buffer
        buffer = []
        return out
    }

    /// A chunked body (RFC 9112 §7.1), decoded; nil when malformed or cut short.
    public func readChunked() -> [UInt8]? {
        var body: [UInt8] = []
        while true {
            guard let line = readLine() else { return nil }
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let sizeText = text.split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText, radix: 16) else { return nil }
            if size == 0 {
                while let t = readLine(), t != [0x0D, 0x0A] {}
                return body
            }
            guard let data = readExactly(size), readExactly(2) == [0x0D, 0x0A] else { return nil }
            body += data
        }
    }

    private func findCRLFCRLF() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4)
        where buffer[i] == 0x0D && buffer[i + 1] == 0x0A && buffer[i + 2] == 0x0D && buffer[i + 3] == 0x0A {
            return i + 4
        }
        return nil
    }
}

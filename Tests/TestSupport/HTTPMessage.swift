import Foundation

/// A request or response as a test sees it (parsed independently of the proxy's own parser).
public struct HTTPMessage: CustomStringConvertible {
    public var startLine: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(startLine: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.startLine = startLine
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public func all(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    public var status: Int {
        let parts = startLine.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }

    public var method: String { String(startLine.split(separator: " ").first ?? "") }
    public var target: String {
        let p = startLine.split(separator: " ")
        return p.count > 1 ? String(p[1]) : ""
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    public var description: String {
        ([startLine] + headers.map { "\($0.name): \($0.value)" }).joined(separator: "\n") + "\n\n" + bodyText
    }

    /// Splits a head into start line and fields.
    public static func parseHead(_ bytes: [UInt8]) -> (String, [(name: String, value: String)]) {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let start = lines.isEmpty ? "" : lines.removeFirst()
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let c = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<c]), line[line.index(after: c)...].trimmingCharacters(in: .whitespaces))
        }
        return (start, headers)
    }
}

extension SocketReader {
    /// Reads one response; `head` true for a response to HEAD (no body).
    public func readResponse(head: Bool = false) -> HTTPMessage? {
        guard var h = readHead() else { return nil }
        var (start, headers) = HTTPMessage.parseHead(h)
        // Skip interim responses.
        while let code = Int(start.split(separator: " ").dropFirst().first ?? ""), code >= 100, code < 200 {
            guard let next = readHead() else { return nil }
            h = next
            (start, headers) = HTTPMessage.parseHead(h)
        }
        var msg = HTTPMessage(startLine: start, headers: headers, body: [])
        let status = msg.status
        if head || status == 204 || status == 304 { return msg }
        if msg.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            guard let b = readChunked() else { return nil }
            msg.body = b
        } else if let cl = msg.header("content-length").flatMap({ Int($0) }) {
            guard let b = readExactly(cl) else { return nil }
            msg.body = b
        } else {
            msg.body = readToEnd()
        }
        return msg
    }

    /// Reads one request (as the test upstream sees it).
    public func readRequest() -> HTTPMessage? {
        guard let h = readHead() else { return nil }
        let (start, headers) = HTTPMessage.parseHead(h)
        var msg = HTTPMessage(startLine: start, headers: headers, body: [])
        if msg.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            guard let b = readChunked() else { return nil }
            msg.body = b
        } else if let cl = msg.header("content-length").flatMap({ Int($0) }), cl > 0 {
            guard let b = readExactly(cl) else { return nil }
            msg.body = b
        }
        return msg
    }
}

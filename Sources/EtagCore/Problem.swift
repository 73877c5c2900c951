import EtagHTTP

/// An error answer with an `application/problem+json` body (RFC 9457).
public struct Problem: Sendable, Equatable {
    public var status: Int
    public var detail: String
    /// Extension members (RFC 9457 §3.2): name and a JSON string value, or nil for JSON null.
    public var extensions: [(String, String?)]

    public init(status: Int, detail: String, extensions: [(String, String?)] = []) {
        self.status = status
        self.detail = detail
        self.extensions = extensions
    }

    public static func == (a: Problem, b: Problem) -> Bool {
        a.status == b.status && a.detail == b.detail && a.extensions.map(\.0) == b.extensions.map(\.0)
            && a.extensions.map(\.1) == b.extensions.map(\.1)
    }

    /// `{"type":"about:blank","title":…,"status":…,"detail":…}`; "about:blank" means the title is the
    /// status's reason phrase (RFC 9457 §4.2.1).
    public var body: [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.append("{\"type\":\"about:blank\",\"title\":\"")
        w.append(string: ReasonPhrase.of(status))
        w.append("\",\"status\":")
        w.append(decimal: status)
        w.append(",\"detail\":\"")
        w.append(string: JSONString.escape(detail))
        w.append("\"")
        for (name, value) in extensions {
            w.append(",\"")
            w.append(string: JSONString.escape(name))
            w.append("\":")
            if let value {
                w.append("\"")
                w.append(string: JSONString.escape(value))
                w.append("\"")
            } else {
                w.append("null")
            }
        }
        w.append("}\n")
        return w.finish()
    }

    /// The complete response: status line, fields, body.
    /// - Parameters:
    ///   - close: send `Connection: close` (the connection is closed after it).
    ///   - date: the current IMF-fixdate.
    ///   - headOnly: a HEAD request gets the fields without the body.
    public func response(close: Bool, date: [UInt8], headOnly: Bool = false, extraFields: [UInt8] = []) -> [UInt8] {
        let b = body
        var w = ByteWriter(capacity: 256 + b.count)
        w.append("HTTP/1.1 ")
        w.append(decimal: status)
        w.append(" ")
        w.append(string: ReasonPhrase.of(status))
        w.append("\r\nContent-Type: application/problem+json\r\nContent-Length: ")
        w.append(decimal: b.count)
        w.append("\r\nDate: ")
        w.append(bytes: date)
        w.append("\r\nCache-Control: no-store\r\n")
        w.append(bytes: extraFields)
        if close { w.append("Connection: close\r\n") }
        w.append("\r\n")
        if !headOnly { w.append(bytes: b) }
        return w.finish()
    }
}

public enum JSONString {
    /// Escapes a string for a JSON string literal (RFC 8259 §7).
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 {
                    let hex = String(ch.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        return out
    }
}

public enum ReasonPhrase {
    /// The reason phrase of RFC 9110 §15 (plus RFC 6585) for a status code.
    public static func of(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 417: return "Expectation Failed"
        case 428: return "Precondition Required"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Error"
        }
    }
}

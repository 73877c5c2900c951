import EtagHTTP

public enum AccessLogFormat: String, Sendable, Equatable, CaseIterable {
    /// `client [date] "METHOD target HTTP/1.1" status bytes seconds upstream=status`
    case text
    /// One JSON object per line (`AccessLogLine.json`).
    case json
}

/// What one access-log line says about an exchange, and its two renderings. Pure: the server fills it from the
/// exchange's record (no copies: the request's bytes are referenced).
public struct AccessLogLine {
    public var client: [UInt8] = []
    public var request: RequestHead?
    public var status = 0
    public var bodyBytes: UInt64 = 0
    public var durationNs: UInt64 = 0
    /// 0: the upstream was not asked.
    public var upstreamStatus = 0
    public var upstreamNs: UInt64 = 0
    /// The Cache-Status field line sent (`Cache-Status: …\r\n`), empty when none.
    public var cacheStatusLine: [UInt8] = []
    public var writeCheck: MetricsLayout.WriteCheckResult?
    public var requestId: ArraySlice<UInt8> = []
    public var aborted = false

    public init() {}

    /// The text line (the format of earlier releases); `date` is the IMF-fixdate.
    public func text(into w: inout ByteWriter, date: [UInt8]) {
        w.append(bytes: client.isEmpty ? Array("-".utf8) : client)
        w.append(" [")
        w.append(bytes: date)
        w.append("] \"")
        if let r = request {
            w.append(r.head.bytes, r.methodRange)
            w.append(" ")
            w.append(r.head.bytes, r.targetRange)
            w.append(r.isHTTP11 ? " HTTP/1.1\" " : " HTTP/1.0\" ")
        } else {
            w.append("-\" ")
        }
        w.append(decimal: status)
        w.append(" ")
        w.append(decimal: bodyBytes)
        w.append(" ")
        Self.fixed(&w, durationNs / 1_000_000, 3)
        w.append(" upstream=")
        if upstreamStatus > 0 { w.append(decimal: upstreamStatus) } else { w.append("-") }
        if aborted { w.append(" aborted") }
        w.append("\n")
    }

    /// One JSON object (RFC 8259) and a line feed. `time` is RFC 3339 in UTC with milliseconds.
    /// - Parameters:
    ///   - second: `HTTPDate.rfc3339` of the current second; `millisecond` its fraction.
    public func json(into w: inout ByteWriter, second: [UInt8], millisecond: Int) {
        w.append("{\"time\":\"")
        w.append(bytes: second)
        w.append(".")
        if millisecond < 100 { w.append("0") }
        if millisecond < 10 { w.append("0") }
        w.append(decimal: millisecond)
        w.append("Z\",\"client\":")
        Self.string(&w, client, 0..<client.count)
        if let r = request {
            w.append(",\"method\":")
            Self.string(&w, r.head.bytes, r.methodRange)
            w.append(",\"target\":")
            Self.string(&w, r.head.bytes, r.targetRange)
            w.append(r.isHTTP11 ? ",\"protocol\":\"HTTP/1.1\"" : ",\"protocol\":\"HTTP/1.0\"")
        } else {
            w.append(",\"method\":\"-\",\"target\":\"-\",\"protocol\":\"-\"")
        }
        w.append(",\"status\":")
        w.append(decimal: status)
        w.append(",\"bytes\":")
        w.append(decimal: bodyBytes)
        w.append(",\"duration_ms\":")
        Self.fixed(&w, durationNs / 1000, 3)
        w.append(",\"upstream_status\":")
        if upstreamStatus > 0 { w.append(decimal: upstreamStatus) } else { w.append("null") }
        w.append(",\"upstream_ms\":")
        if upstreamStatus > 0 || upstreamNs > 0 { Self.fixed(&w, upstreamNs / 1000, 3) } else { w.append("null") }
        w.append(",\"cache\":")
        let prefix = "Cache-Status: ".utf8.count
        if cacheStatusLine.count > prefix + 2 {
            Self.string(&w, cacheStatusLine, prefix..<(cacheStatusLine.count - 2))
        } else {
            w.append("\"-\"")
        }
        w.append(",\"write_check\":\"")
        w.append(string: writeCheck?.label ?? "-")
        w.append("\",\"request_id\":")
        Self.string(&w, Array(requestId), 0..<requestId.count)
        if aborted { w.append(",\"aborted\":true") }
        w.append("}\n")
    }

    /// `units` with `digits` decimals: 1234 units of 1/1000 → "1.234".
    static func fixed(_ w: inout ByteWriter, _ units: UInt64, _ digits: Int) {
        var scale: UInt64 = 1
        for _ in 0..<digits { scale *= 10 }
        w.append(decimal: units / scale)
        w.append(".")
        var frac = units % scale
        var d = scale / 10
        while d > 0 {
            w.append(byte: UInt8(ascii: "0") + UInt8(frac / d))
            frac %= d
            d /= 10
        }
    }

    /// A JSON string of bytes: `"` and `\` escaped, control bytes and bytes above 0x7E as `\u00XX` (a request
    /// target is bytes, not always UTF-8: the line stays valid JSON whatever the client sent).
    static func string(_ w: inout ByteWriter, _ b: [UInt8], _ r: Range<Int>) {
        let hex: StaticString = "0123456789abcdef"
        w.append("\"")
        for i in r {
            let c = b[i]
            if c == 0x22 || c == 0x5C {
                w.append(byte: 0x5C)
                w.append(byte: c)
            } else if c < 0x20 || c > 0x7E {
                w.append("\\u00")
                w.append(byte: hex.utf8Start[Int(c >> 4)])
                w.append(byte: hex.utf8Start[Int(c & 0xF)])
            } else {
                w.append(byte: c)
            }
        }
        w.append("\"")
    }
}

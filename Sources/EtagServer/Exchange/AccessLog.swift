import EtagCore
import EtagHTTP
#if canImport(Glibc)
import Glibc
#endif

/// One line per exchange: client, request line, status, body bytes, seconds, upstream status.
/// Each line is one `write(2)` to stdout or stderr, so lines from different workers never interleave.
struct AccessLog: Sendable {
    let fd: Int32?

    init(_ target: AccessLogTarget) {
        switch target {
        case .stdout: fd = 1
        case .stderr: fd = 2
        case .off: fd = nil
        }
    }

    func record(_ c: ClientConnection, aborted: Bool = false) {
        guard let fd else { return }
        var w = ByteWriter(capacity: 256)
        w.append(bytes: c.peerIP.isEmpty ? Array("-".utf8) : c.peerIP)
        w.append(" [")
        w.append(bytes: c.worker.exchanges.date)
        w.append("] \"")
        if let r = c.request {
            w.append(r.head.bytes, r.methodRange)
            w.append(" ")
            w.append(r.head.bytes, r.targetRange)
            w.append(r.isHTTP11 ? " HTTP/1.1\" " : " HTTP/1.0\" ")
        } else {
            w.append("-\" ")
        }
        w.append(decimal: c.record.statusSent)
        w.append(" ")
        w.append(decimal: c.record.bodyBytesSent)
        w.append(" ")
        let ms = c.record.durationNs / 1_000_000
        w.append(decimal: ms / 1000)
        w.append(".")
        let frac = ms % 1000
        if frac < 100 { w.append("0") }
        if frac < 10 { w.append("0") }
        w.append(decimal: frac)
        w.append(" upstream=")
        if c.record.upstreamStatus > 0 { w.append(decimal: c.record.upstreamStatus) } else { w.append("-") }
        if aborted { w.append(" aborted") }
        w.append("\n")
        w.bytes.withUnsafeBytes { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}

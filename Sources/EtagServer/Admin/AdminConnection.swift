internal import CLibUV
internal import CEtagShim
import EtagCore
import EtagHTTP
#if canImport(Glibc)
import Glibc
#endif

/// One connection to the admin listener: reads one request head, answers it (`AdminServer.serve`) and closes.
///
/// Ownership: retained by its own handle from `init` until the handle's close callback; the admin server lists
/// it meanwhile. Admin thread only.
final class AdminConnection {
    unowned(unsafe) let admin: AdminServer  // outlives every connection on its loop
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    let startMs: UInt64
    private var input: [UInt8] = []
    private(set) var answered = false
    var headOnly = false
    private var closing = false
    static let maxHead = 8 * 1024

    var stream: UnsafeMutablePointer<uv_stream_t> { etag_uv_stream(tcp) }

    init(admin: AdminServer, startMs: UInt64) {
        self.admin = admin
        self.startMs = startMs
        tcp = .allocate(capacity: 1)
        uv_tcp_init(admin.loop, tcp)
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    func startReading() { uv_read_start(stream, onAdminAlloc, onAdminRead) }

    fileprivate func didRead(_ bytes: UnsafeRawBufferPointer) {
        guard !answered else { return }
        input.append(contentsOf: bytes)
        let limits = HTTPLimits(maxHeadSize: Self.maxHead, maxHeaderCount: 64, maxTrailerSize: 0)
        let parsed = input.withUnsafeBytes { b -> Result<HeadParseResult<RequestHead>, HTTPParseError> in
            do throws(HTTPParseError) { return .success(try RequestParser.parse(b, limits: limits)) } catch {
                return .failure(error)
            }
        }
        let result: HeadParseResult<RequestHead>
        switch parsed {
        case .success(let r): result = r
        case .failure(let error): return answerProblem(error.status, error.detail)
        }
        guard case .complete(let head, _) = result else { return }
        uv_read_stop(stream)
        switch AdminRoutes.route(method: head.method, target: head.targetString) {
        case .serve(let endpoint, let headOnly):
            admin.serve(endpoint, headOnly: headOnly, on: self)
        case .notFound:
            answerProblem(404, "The admin listener serves /healthz, /readyz and /metrics.")
        case .methodNotAllowed:
            answerProblem(405, "Only GET and HEAD.", extra: "Allow: GET, HEAD\r\n")
        }
    }

    private func answerProblem(_ status: Int, _ detail: String, extra: String = "") {
        let p = Problem(status: status, detail: detail)
        answer(status, "application/problem+json", p.body, headOnly: false, extra: extra)
    }

    /// Writes the whole answer, then closes.
    func answer(_ status: Int, _ contentType: String, _ body: [UInt8], headOnly: Bool, extra: String = "") {
        guard !answered, !closing else { return }
        answered = true
        let bytes = AdminRoutes.response(
            status: status, contentType: contentType, body: body, headOnly: headOnly, date: admin.date,
            extra: extra)
        let mem = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { mem.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        req.pointee.data = mem
        var buf = uv_buf_t(base: mem.assumingMemoryBound(to: CChar.self), len: bytes.count)
        if uv_write(req, stream, &buf, 1, onAdminWrite) != 0 {
            mem.deallocate()
            req.deallocate()
            close()
        }
    }

    fileprivate func written() { close() }

    func close() {
        guard !closing else { return }
        closing = true
        uv_close(etag_uv_handle(tcp), onAdminClose)
    }

    fileprivate func didClose() {
        admin.closed(self)
        tcp.deallocate()
    }
}

private func onAdminAlloc(
    _ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int, _ buf: UnsafeMutablePointer<uv_buf_t>?
) {
    let c = Unmanaged<AdminConnection>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
    let space = c.admin.readBuffer
    buf!.pointee = uv_buf_t(base: space.baseAddress!.assumingMemoryBound(to: CChar.self), len: space.count)
}

private func onAdminRead(
    _ stream: UnsafeMutablePointer<uv_stream_t>?, _ nread: Int, _ buf: UnsafePointer<uv_buf_t>?
) {
    let c = Unmanaged<AdminConnection>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
    if nread > 0 {
        c.didRead(UnsafeRawBufferPointer(start: buf!.pointee.base, count: nread))
    } else if nread < 0 {
        c.close()
    }
}

private func onAdminWrite(_ req: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
    let c = Unmanaged<AdminConnection>.fromOpaque(req!.pointee.handle.pointee.data).takeUnretainedValue()
    req!.pointee.data.deallocate()
    req!.deallocate()
    c.written()
}

private func onAdminClose(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    let c = Unmanaged<AdminConnection>.fromOpaque(h!.pointee.data).takeRetainedValue()
    c.didClose()
}

// libFuzzer target: the response parser and the response body decoder (what the upstream client runs).
import EtagHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let methods: [HTTPMethod] = [.get, .head, .put, .post]
    let method = methods[Int(data[0]) % methods.count]
    let buf = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let limits = HTTPLimits()
    guard case .complete(let head, let used)? = try? ResponseParser.parse(buf, requestMethod: method, limits: limits)
    else { return 0 }
    check(used > 0 && used <= buf.count)
    check(head.status >= 100 && head.status <= 999)
    if method == .head || head.status == 204 || head.status == 304 { check(head.framing == .none) }
    var decoder = BodyDecoder(response: head.framing, maxTrailerSize: 1024)
    walkBody(&decoder, buf, from: used)
    return 0
}

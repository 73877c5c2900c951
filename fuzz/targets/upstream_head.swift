// libFuzzer target: the head sent upstream (ForwardingRules), for every request the parser accepts.
// Invariants: origin-form inside the base path, exactly one Host, no hop-by-hop field, and the head parses.
import EtagCore
import EtagHTTP

let rules: ForwardingRules = {
    var c = ProxyConfig()
    c.upstream = UpstreamURL(host: "api", port: 9000, basePath: "/base")
    return ForwardingRules(config: c)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUpstreamHead(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    guard case .complete(let req, _)? = try? RequestParser.parse(buf, limits: HTTPLimits()) else { return 0 }
    let out = rules.upstreamRequestHead(req, clientIP: Array("10.0.0.1".utf8))
    // The proxy adds up to four fields (X-Forwarded-*, Via) and some bytes to what it accepted.
    let upstreamLimits = HTTPLimits(maxHeadSize: 64 * 1024, maxHeaderCount: 100 + 4)
    guard case .complete(let sent, let used)? = try? out.withUnsafeBytes({ try RequestParser.parse($0, limits: upstreamLimits) })
    else { fatalError("the upstream head does not parse: \(String(decoding: out, as: UTF8.self))") }
    check(used == out.count)
    // Bytes, not String: a target may hold bytes above 0x7F, and a combining mark after "/" would make the
    // string's first grapheme differ.
    let target = Array(sent.head.bytes[sent.targetRange])
    let base = Array("/base".utf8)
    if target == [UInt8(ascii: "*")] { return 0 }  // OPTIONS * (the server as a whole)
    check(target.starts(with: base), "target outside the base path")
    check(target.count == base.count || target[base.count] == UInt8(ascii: "/"), "target outside /base/")
    check(sent.hostString == "api:9000")
    let names = sent.head.fields.map { sent.head.string($0.name).lowercased() }
    for hop in ["connection", "keep-alive", "te", "upgrade", "proxy-connection", "proxy-authorization"] {
        check(!names.contains(hop), "hop-by-hop \(hop) forwarded")
    }
    check(names.filter { $0 == "host" }.count == 1)
    return 0
}

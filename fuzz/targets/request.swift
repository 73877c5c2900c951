// libFuzzer target: the request parser and the request body decoder (EtagHTTP).
// Invariants beyond "no crash": a complete head holds no bare CR and no NUL; parsing the consumed prefix again
// gives the same head; a body decoder never reports data outside the buffer or moves backwards.
import EtagHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    guard case .complete(let head, let used)? = try? RequestParser.parse(buf, limits: HTTPLimits()) else { return 0 }
    check(used > 0 && used <= size)
    let bytes = head.head.bytes
    for (i, c) in bytes.enumerated() {
        check(c != 0, "NUL in a parsed head")
        if c == 0x0D { check(i + 1 < bytes.count && bytes[i + 1] == 0x0A, "bare CR in a parsed head") }
    }
    let again = try? RequestParser.parse(UnsafeRawBufferPointer(rebasing: buf[0..<used]), limits: HTTPLimits())
    guard case .complete(let h2, let used2)? = again else { fatalError("the head does not parse again") }
    check(used2 == used && h2.method == head.method && h2.framing == head.framing)
    check(h2.targetString == head.targetString && h2.hostString == head.hostString)
    var decoder = BodyDecoder(request: head.framing, maxTrailerSize: 1024)
    walkBody(&decoder, buf, from: used)
    return 0
}

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
    var at = used
    var steps = 0
    while steps < 100_000, let (event, next) = try? decoder.next(buf, at: at) {
        check(next >= at && next <= size, "the decoder moved outside the buffer")
        if case .data(let r) = event { check(r.lowerBound >= at && r.upperBound <= next) }
        if event == .needMore || event == .end { break }
        at = next
        steps += 1
    }
    return 0
}

/// An invariant: unlike `precondition`, its message survives `-O`, so the crash report names what failed.
@inline(__always)
private func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String = "") {
    if !condition() { fatalError("invariant failed: \(message())") }
}

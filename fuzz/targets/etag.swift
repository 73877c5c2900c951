// libFuzzer target: If-Match / If-None-Match lists and their evaluation (EtagCore).
// Invariants: If-Match passes (and If-None-Match fails) only for `*` or a list naming the current tag; a strong
// match is also a weak one; no parsed tag holds a quote; the RFC 9110 §13.2.2 evaluation order (If-Match first,
// then If-None-Match, 304 only for GET/HEAD) holds for the field split at its first NUL byte.
import EtagCore
import EtagHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzETag(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let field = Array(UnsafeBufferPointer(start: data, count: size))
    let list = EntityTagList.parse(bytes: field)
    let current = EntityTag(opaque: Array("abc".utf8))
    let passes = list.ifMatchPasses(current: current)
    let noneMatches = list.ifNoneMatchPasses(current: current)
    // A strong match is a weak match too (If-None-Match compares weakly, If-Match strongly).
    if passes { check(!noneMatches, "If-Match matched but If-None-Match did not") }
    if (passes || !noneMatches) && !list.isAny {
        let text = String(decoding: field, as: UTF8.self)
        check(text.contains("abc"), "a match without the tag in the field")
    }
    for t in list.tags { check(!t.opaque.contains(0x22), "a quote inside an opaque tag") }
    _ = list.first
    // The same bytes as an If-Match (before the first NUL) and an If-None-Match (after it), on GET or PUT.
    let nul = field.firstIndex(of: 0)
    let im = nul.map { EntityTagList.parse(bytes: Array(field[..<$0])) } ?? list
    let inm = nul.map { EntityTagList.parse(bytes: Array(field[($0 + 1)...])) }
    for method in [HTTPMethod.get, .put] {
        let outcome = evaluatePreconditions(
            method: method, Conditions(ifMatch: im, ifNoneMatch: inm), current: current)
        let imFails = !im.ifMatchPasses(current: current)
        let inmFails = inm.map { !$0.ifNoneMatchPasses(current: current) } ?? false
        if imFails {
            check(outcome == .preconditionFailed, "a failed If-Match must be 412 whatever If-None-Match says")
        } else if inmFails {
            check(outcome == (method == .get ? .notModified : .preconditionFailed), "If-None-Match: 304 only on GET")
        } else {
            check(outcome == .proceed, "both conditions pass: proceed")
        }
    }
    return 0
}

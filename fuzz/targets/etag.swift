// libFuzzer target: If-Match / If-None-Match lists and their evaluation (EtagCore).
// Invariants: If-Match passes (and If-None-Match fails) only for `*` or a list naming the current tag; a strong
// match is also a weak one; no parsed tag holds a quote.
import EtagCore

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
    return 0
}

// Shared by every fuzz target (fuzz/run compiles this file into each one).
import EtagHTTP

/// An invariant: unlike `precondition`, its message survives `-O`, so the crash report names what failed.
@inline(__always)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String = "") {
    if !condition() { fatalError("invariant failed: \(message())") }
}

/// Runs `decoder` over `buf` from `start` until it needs more, ends or fails, checking that it never reports data
/// outside what it consumed nor moves backwards or past the buffer.
func walkBody(_ decoder: inout BodyDecoder, _ buf: UnsafeRawBufferPointer, from start: Int) {
    var at = start
    var steps = 0
    while steps < 100_000, let (event, next) = try? decoder.next(buf, at: at) {
        check(next >= at && next <= buf.count, "the decoder moved outside the buffer")
        if case .data(let r) = event { check(r.lowerBound >= at && r.upperBound <= next, "data outside the step") }
        if event == .needMore || event == .end { break }
        at = next
        steps += 1
    }
}

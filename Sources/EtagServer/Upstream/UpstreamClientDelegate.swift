import EtagCore
import EtagHTTP

/// How the delegate takes a response body, decided when the head arrives (and again on overflow).
enum UpstreamBodyMode {
    /// Each piece is handed to `upstreamReceivedBody` as it arrives.
    case stream
    /// Collected whole into the held body (hashed as it arrives when it has a hasher), up to its limit.
    case hold(HeldBody)
    /// Read and dropped (the connection stays usable).
    case discard
}

/// Why an upstream exchange ended without a complete response. The connection is already closed and detached
/// when the delegate hears of it.
enum UpstreamFailure: Equatable {
    /// The connection could not be made (libuv error code).
    case unreachable(Int32)
    /// The upstream's host name did not resolve (a libuv `UV_EAI_*` code).
    case unresolved(Int32)
    /// Connecting took longer than `timeouts.connect`.
    case connectTimedOut
    /// The TCP connection was made but the TLS handshake did not complete within `timeouts.connect`.
    case handshakeTimedOut
    /// No progress on the response within `timeouts.upstream`.
    case timedOut
    /// The upstream closed or reset the connection before the response ended.
    case closed
    /// The response head or the body framing is invalid (the parser's detail), or it switched protocols.
    case broken(String)
    /// The TLS handshake or record layer failed (the cause, as `TLSChannel` words it).
    case tls(String)
}

/// What an exchange hears from the `UpstreamConnection` it started. The connection refers to its delegate
/// `unowned(unsafe)`: the delegate calls `detach()` before it goes away, and never hears from the connection
/// after `upstreamFinished` or `upstreamFailed`. Worker thread only.
protocol UpstreamClientDelegate: AnyObject {
    /// The final response head (1xx interim responses are skipped). Returns how the body is taken.
    func upstreamReceivedHead(_ head: ResponseHead) -> UpstreamBodyMode
    /// A piece of a streamed body. Returns false to pause reading until `resume()`.
    func upstreamReceivedBody(_ data: UnsafeRawBufferPointer) -> Bool
    /// Every body byte received so far was delivered; more are awaited.
    func upstreamAwaitsBody()
    /// A held body would pass its limit with the next piece (not yet appended). Returns how to go on.
    func upstreamHeldBodyOverflowed() -> UpstreamBodyMode
    /// The response is complete; the connection is already back in the pool or closed.
    func upstreamFinished()
    /// The exchange failed; the connection is closed.
    func upstreamFailed(_ failure: UpstreamFailure)
    /// A pooled connection turned out closed: the request is being replayed on `fresh`, which now serves it.
    func upstreamRetried(on fresh: UpstreamConnection)
    /// The socket took every queued request byte (for request-body back-pressure).
    func upstreamTookRequestBytes()
    /// How long the exchange took upstream, told right before `upstreamFinished` or `upstreamFailed`.
    func upstreamTook(ns: UInt64)
}

extension UpstreamClientDelegate {
    func upstreamReceivedBody(_ data: UnsafeRawBufferPointer) -> Bool { true }
    func upstreamAwaitsBody() {}
    func upstreamHeldBodyOverflowed() -> UpstreamBodyMode { .discard }
    func upstreamTookRequestBytes() {}
    func upstreamTook(ns: UInt64) {}
}

internal import CEtagShm
import EtagCore

/// The memory of one worker's metric words: allocated here, 64-byte aligned and padded, so no two workers' words
/// share a cache line; freed with the worker that owns it (the server keeps its workers until the admin thread,
/// which reads them, has ended).
final class MetricsMemory: @unchecked Sendable {
    let words: UnsafeMutablePointer<UInt64>
    static let padded = (MetricsLayout.wordCount + 7) / 8 * 8

    init() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: (Self.padded + 8) * 8, alignment: 64)
        words = raw.bindMemory(to: UInt64.self, capacity: Self.padded + 8)
        words.initialize(repeating: 0, count: Self.padded + 8)
    }

    deinit { UnsafeMutableRawPointer(words).deallocate() }
}

/// One worker's metric words (`MetricsLayout`) and its evidence of the upstream's health (`Readiness`): a pair of
/// pointers into its `MetricsMemory`, so passing it around costs no reference counting on the request path.
///
/// Threads: written only by the worker's thread, with relaxed single-writer stores (`etag_count64`: no lock, no
/// locked instruction); read by the admin thread with relaxed loads when it is scraped.
struct WorkerMetrics: @unchecked Sendable {
    typealias L = MetricsLayout
    private let words: UnsafeMutablePointer<UInt64>
    private let health: UnsafeMutablePointer<UInt64>

    init(_ memory: MetricsMemory) {
        words = memory.words
        health = memory.words + MetricsMemory.padded
    }

    @inline(__always) func add(_ index: Int, _ n: UInt64 = 1) { etag_count64(words + index, n) }

    @inline(__always) func add(_ c: L.Counter, _ n: UInt64 = 1) { add(L.counter(c), n) }

    /// One observation of a duration histogram at `base` (`MetricsLayout.histogramWords` words).
    func observe(_ base: Int, ns: UInt64) {
        add(base + L.bucket(ns: ns))
        add(base + L.boundCount + 1, ns)
        add(base + L.boundCount + 2)
    }

    func set(_ level: L.Level, _ value: Int) { etag_set64(words + L.level(level), UInt64(max(value, 0))) }

    func value(_ index: Int) -> UInt64 { etag_peek64(words + index) }

    func value(_ c: L.Counter) -> UInt64 { value(L.counter(c)) }

    /// Adds this worker's words to `sum` (the admin thread's scrape).
    func addTo(_ sum: inout [UInt64]) {
        for i in 0..<L.wordCount { sum[i] &+= etag_peek64(words + i) }
    }

    // MARK: the upstream's health (loop milliseconds)

    /// A connect succeeded or an exchange completed: the current run of failures, if any, is over.
    func upstreamReached(nowMs: UInt64) {
        etag_set64(health, nowMs)
        if etag_peek64(health + 1) != 0 { etag_set64(health + 1, 0) }
    }

    /// The upstream could not be reached (a libuv error code; `UV_ETIMEDOUT` for a connect timeout).
    func upstreamUnreachable(nowMs: UInt64, code: Int32) {
        if etag_peek64(health + 1) == 0 { etag_set64(health + 1, nowMs) }
        etag_set64(health + 2, UInt64(UInt32(bitPattern: code)))
    }

    var evidence: Readiness.Evidence {
        Readiness.Evidence(
            reachedMs: etag_peek64(health), failingSinceMs: etag_peek64(health + 1),
            failureCode: Int32(bitPattern: UInt32(truncatingIfNeeded: etag_peek64(health + 2))))
    }
}

internal import CLibUV
import EtagCore
import EtagHTTP
#if canImport(Glibc)
import Glibc
#endif

/// One worker's access log: a line per exchange (`AccessLogLine`, text or JSON), collected during a loop
/// iteration and handed to the process's `AccessLogSink` once per iteration (`flush`, from the worker's prepare
/// handle), so a worker never waits for the log output; lines the sink cannot take are counted as dropped.
///
/// Worker thread only (the sink is shared and locks itself).
final class AccessLog {
    private(set) var format: AccessLogFormat
    /// The sink lines go to; nil while logging is off.
    let sink: AccessLogSink?
    /// The process's sink even while this worker's logging is off (a reload may turn it on).
    let sharedSink: AccessLogSink?
    private var pending: [UInt8] = []
    private var pendingLines: UInt64 = 0
    private var second = -1
    private var secondText: [UInt8] = []

    init(format: AccessLogFormat, enabled: Bool, sink: AccessLogSink?) {
        self.format = format
        self.sink = enabled ? sink : nil
        sharedSink = sink
    }

    /// Writes the line of the exchange that ends on `c`.
    func record(_ c: ClientConnection, aborted: Bool = false) {
        guard sink != nil else { return }
        var line = AccessLogLine()
        line.client = c.peerIP
        line.request = c.request
        line.status = c.record.statusSent
        line.bodyBytes = c.record.bodyBytesSent
        line.durationNs = c.record.durationNs
        line.upstreamStatus = c.record.upstreamStatus
        line.upstreamNs = c.record.upstreamNs
        line.cacheStatusLine = c.record.cacheHit ? CacheStatus.hit : c.record.cacheStatusLine ?? []
        line.writeCheck = c.record.writeCheck
        line.requestId = RequestID.id(ofLine: c.requestIdLine)
        line.aborted = aborted
        var w = ByteWriter(appendingTo: &pending)
        switch format {
        case .text:
            line.text(into: &w, date: c.worker.exchanges.date)
        case .json:
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            if ts.tv_sec != second {
                second = ts.tv_sec
                secondText = HTTPDate.rfc3339(epochSeconds: ts.tv_sec)
            }
            line.json(into: &w, second: secondText, millisecond: ts.tv_nsec / 1_000_000)
        }
        pending = w.finish()
        pendingLines += 1
        if pending.count >= 64 * 1024 { flush(c.worker.metrics) }
    }

    /// Hands the collected lines to the sink (lines it refuses are counted in `metrics`).
    func flush(_ metrics: WorkerMetrics) {
        guard pendingLines > 0, let sink else { return }
        if !sink.submit(pending) { metrics.add(.accessLogDropped, pendingLines) }
        pending = []
        pendingLines = 0
    }
}

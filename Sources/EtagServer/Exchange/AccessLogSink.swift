internal import CEtagShim
import EtagCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes the access log on a thread of its own, so a slow stdout (a full pipe, a stalled log collector) never
/// blocks a worker: workers hand over the lines of one loop iteration at once (`submit`), and what does not fit
/// in `access_log.buffer` is dropped and counted by the worker instead of waited for.
///
/// Threads: `submit` and `setTarget` from any thread, under `lock`; the writer thread takes the queue under the
/// lock and writes outside it. `stop()` (the server, after the workers ended) writes what is queued and joins.
final class AccessLogSink: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var limit: Int
    private var fd: Int32?
    private var stopping = false
    private var thread: pthread_t?

    init(target: AccessLogTarget, limit: Int) {
        self.limit = limit
        fd = Self.fd(target)
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&wake, nil)
    }

    deinit {
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&lock)
    }

    static func fd(_ t: AccessLogTarget) -> Int32? {
        switch t {
        case .stdout: return 1
        case .stderr: return 2
        case .off: return nil
        }
    }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        pthread_create(&t, nil, accessLogThreadMain, box)
        thread = t
    }

    /// A reload: where lines go from now on, and the new bound.
    func setTarget(_ target: AccessLogTarget, limit: Int) {
        pthread_mutex_lock(&lock)
        fd = Self.fd(target)
        self.limit = limit
        pthread_mutex_unlock(&lock)
    }

    /// Queues `chunk` (whole lines); false when it does not fit, and it was dropped.
    func submit(_ chunk: [UInt8]) -> Bool {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        guard fd != nil, !stopping else { return true }
        guard queuedBytes + chunk.count <= limit else { return false }
        queue.append(chunk)
        queuedBytes += chunk.count
        pthread_cond_signal(&wake)
        return true
    }

    /// Writes what is queued, then ends the thread — waiting at most `graceMs` for an output that does not take
    /// it (a stalled log collector must not keep the process from exiting; the thread is left to the exit).
    func stop(graceMs: Int = 2000) {
        pthread_mutex_lock(&lock)
        stopping = true
        pthread_cond_signal(&wake)
        pthread_mutex_unlock(&lock)
        guard let t = thread else { return }
        thread = nil
        _ = etag_thread_join_within(t, Int32(graceMs))
    }

    fileprivate func run() {
        while true {
            pthread_mutex_lock(&lock)
            while queue.isEmpty && !stopping { pthread_cond_wait(&wake, &lock) }
            let batch = queue
            let target = fd
            queue = []
            queuedBytes = 0
            let done = stopping
            pthread_mutex_unlock(&lock)
            if let target {
                for chunk in batch { Self.writeAll(target, chunk) }
            }
            if done && batch.isEmpty { return }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if n > 0 {
                    off += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return  // the log output is gone (EPIPE, EBADF): drop the rest
                }
            }
        }
    }
}

private func accessLogThreadMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let s = Unmanaged<AccessLogSink>.fromOpaque(arg!).takeRetainedValue()
    s.run()
    return nil
}

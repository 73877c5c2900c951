/// The process readings Prometheus' process collector reports, parsed from `/proc/self/stat` text. Pure; the
/// admin thread reads the files.
public struct ProcessStats: Sendable, Equatable {
    /// Seconds since the epoch.
    public var startTime: Double = 0
    public var cpuSeconds: Double = 0
    public var residentBytes: Int = 0
    public var virtualBytes: Int = 0
    public var openFDs: Int = 0
    public var maxFDs: Int = 0

    public init() {}

    /// Fills CPU time, start time and memory from `/proc/self/stat` (proc(5)): the fields after the
    /// parenthesised command name, which may itself hold spaces and parentheses.
    /// - Parameters:
    ///   - ticksPerSecond: `sysconf(_SC_CLK_TCK)`.
    ///   - bootTime: `btime` from `/proc/stat`, seconds since the epoch.
    public mutating func parseStat(_ text: String, ticksPerSecond: Int, pageSize: Int, bootTime: Int) -> Bool {
        guard let close = text.lastIndex(of: ")") else { return false }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3); utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        guard fields.count >= 22, let utime = Int(fields[11]), let stime = Int(fields[12]),
            let start = Int(fields[19]), let vsize = Int(fields[20]), let rss = Int(fields[21]), ticksPerSecond > 0
        else { return false }
        cpuSeconds = Double(utime + stime) / Double(ticksPerSecond)
        startTime = Double(bootTime) + Double(start) / Double(ticksPerSecond)
        virtualBytes = vsize
        residentBytes = rss * pageSize
        return true
    }

    /// `btime` from `/proc/stat` text.
    public static func bootTime(_ procStat: String) -> Int? {
        for line in procStat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int(line.dropFirst(6).trimmingPrefixSpaces())
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingPrefixSpaces() -> Substring { drop { $0 == " " } }
}

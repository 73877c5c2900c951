import EtagCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads this process's `ProcessStats` from `/proc` (the admin thread, once per scrape).
enum ProcessReadings {
    static func read() -> ProcessStats {
        var s = ProcessStats()
        if let stat = readFile("/proc/self/stat"), let boot = readFile("/proc/stat").flatMap(ProcessStats.bootTime) {
            _ = s.parseStat(
                stat, ticksPerSecond: Int(sysconf(Int32(_SC_CLK_TCK))), pageSize: Int(sysconf(Int32(_SC_PAGESIZE))),
                bootTime: boot)
        }
        s.openFDs = countEntries("/proc/self/fd")
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            s.maxFDs = Int(truncatingIfNeeded: limit.rlim_cur)
        }
        return s
    }

    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Entries of a directory other than `.` and `..` (the directory's own descriptor included, as the
    /// Prometheus client counts it).
    private static func countEntries(_ path: String) -> Int {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix(2)) }
            if name[0] == UInt8(ascii: ".") && (name[1] == 0 || name[1] == UInt8(ascii: ".")) { continue }
            n += 1
        }
        return n
    }
}

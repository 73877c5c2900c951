/// Dates the proxy writes, from seconds since the epoch (UTC): the IMF-fixdate of HTTP (RFC 9110 §5.6.7) and the
/// RFC 3339 timestamp of the JSON access log.
public enum HTTPDate {
    /// "Sun, 06 Nov 1994 08:49:37 GMT"
    public static func format(epochSeconds t: Int) -> [UInt8] {
        let c = Civil(t)
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let s =
            "\(names[c.weekday]), \(two(c.day)) \(months[c.month - 1]) \(c.year) "
            + "\(two(c.secs / 3600)):\(two(c.secs / 60 % 60)):\(two(c.secs % 60)) GMT"
        return Array(s.utf8)
    }

    /// "1994-11-06T08:49:37" (RFC 3339 §5.6 without the fraction and the offset, which the caller appends).
    public static func rfc3339(epochSeconds t: Int) -> [UInt8] {
        let c = Civil(t)
        let s =
            "\(c.year)-\(two(c.month))-\(two(c.day))T\(two(c.secs / 3600)):\(two(c.secs / 60 % 60)):\(two(c.secs % 60))"
        return Array(s.utf8)
    }

    private static func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    /// The UTC calendar date of an epoch second (Howard Hinnant's civil_from_days).
    private struct Civil {
        var year: Int, month: Int, day: Int, weekday: Int, secs: Int
        init(_ t: Int) {
            let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
            secs = t - days * 86400
            weekday = (days % 7 + 11) % 7  // 1970-01-01 was a Thursday
            let z = days + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
            year = yoe + era * 400
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            day = doy - (153 * mp + 2) / 5 + 1
            month = mp < 10 ? mp + 3 : mp - 9
            if month <= 2 { year += 1 }
        }
    }
}

import EtagHTTP

/// What the admin listener (`admin.listen`) answers, decided from the request line alone. Pure.
public enum AdminRoutes {
    public enum Endpoint: Equatable, Sendable {
        /// Liveness: 200 while the process serves.
        case healthz
        /// Readiness: 200, or 503 with a reason (`Readiness`).
        case readyz
        /// Prometheus text exposition (`MetricsExposition`).
        case metrics
    }

    public enum Route: Equatable, Sendable {
        case serve(Endpoint, headOnly: Bool)
        case notFound
        /// RFC 9110 §15.5.6: 405 with `Allow: GET, HEAD`.
        case methodNotAllowed
    }

    /// `target` is the request-target as received; its query is ignored (Prometheus may add one).
    public static func route(method: HTTPMethod, target: String) -> Route {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let endpoint: Endpoint
        switch path {
        case "/healthz", "/livez": endpoint = .healthz
        case "/readyz": endpoint = .readyz
        case "/metrics": endpoint = .metrics
        default: return .notFound
        }
        switch method {
        case .get: return .serve(endpoint, headOnly: false)
        case .head: return .serve(endpoint, headOnly: true)
        default: return .methodNotAllowed
        }
    }

    /// A complete admin answer; the connection closes after it (probes and scrapers open one per request).
    public static func response(
        status: Int, contentType: String, body: [UInt8], headOnly: Bool, date: [UInt8], extra: String = ""
    ) -> [UInt8] {
        var w = ByteWriter(capacity: 200 + body.count)
        w.append("HTTP/1.1 ")
        w.append(decimal: status)
        w.append(" ")
        w.append(string: ReasonPhrase.of(status))
        w.append("\r\nContent-Type: ")
        w.append(string: contentType)
        w.append("\r\nContent-Length: ")
        w.append(decimal: body.count)
        w.append("\r\nCache-Control: no-store\r\nConnection: close\r\nDate: ")
        w.append(bytes: date)
        w.append("\r\n")
        w.append(string: extra)
        w.append("\r\n")
        if !headOnly { w.append(bytes: body) }
        return w.finish()
    }
}

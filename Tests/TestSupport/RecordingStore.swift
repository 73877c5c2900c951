import Foundation

/// A tiny resource store behind a `TestUpstream`: GET returns the stored JSON, PUT/PATCH replace it, DELETE
/// removes it, POST creates `/items/<n>`. It records every write it performs, so a test can prove that a
/// rejected write never reached it.
public final class RecordingStore: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String: String] = [:]
    private var next = 1
    public private(set) var writes: [(method: String, target: String, body: String)] = []
    /// What PUT/PATCH answer: the new representation (nil) or a fixed body such as `{"ok": true}`.
    public var writeAnswer: String?

    public init(_ initial: [String: String] = [:]) { items = initial }

    public var writeCount: Int { lock.withLock { writes.count } }
    public func value(_ path: String) -> String? { lock.withLock { items[path] } }

    public func handle(_ req: HTTPMessage) -> TestUpstream.Reply {
        let path = String(req.target.split(separator: "?").first ?? "")
        return lock.withLock {
            switch req.method {
            case "GET":
                guard let v = items[path] else {
                    return .respond(status: 404, headers: [], body: Array("{\"error\":\"not found\"}".utf8))
                }
                return .respond(status: 200, headers: [("Content-Type", "application/json")], body: Array(v.utf8))
            case "PUT", "PATCH":
                writes.append((req.method, req.target, req.bodyText))
                let created = items[path] == nil
                items[path] = req.bodyText
                let answer = writeAnswer ?? req.bodyText
                return .respond(
                    status: created ? 201 : 200, headers: [("Content-Type", "application/json")],
                    body: Array(answer.utf8))
            case "DELETE":
                writes.append((req.method, req.target, ""))
                guard items.removeValue(forKey: path) != nil else {
                    return .respond(status: 404, headers: [], body: [])
                }
                return .respond(status: 204, headers: [], body: [])
            case "POST":
                writes.append((req.method, req.target, req.bodyText))
                let p = "\(path)/\(next)"
                next += 1
                items[p] = req.bodyText
                return .respond(
                    status: 201, headers: [("Location", p), ("Content-Type", "application/json")],
                    body: Array(req.bodyText.utf8))
            default:
                return .respond(status: 405, headers: [], body: [])
            }
        }
    }
}

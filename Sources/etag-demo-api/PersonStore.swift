import Foundation

/// The demo's data: persons in memory, JSON in and out, no validators at all (the legacy API etag-proxy fronts).
final class PersonStore: @unchecked Sendable {
    private let lock = NSLock()
    private var persons: [Int: [String: Any]] = [:]
    private var nextID = 1

    struct Answer {
        var status: Int
        var body: Data
        var headers: [(String, String)] = []
    }

    func handle(method: String, path: String, body: Data) -> Answer {
        let parts = path.split(separator: "?").first.map { $0.split(separator: "/").map(String.init) } ?? []
        guard parts.first == "persons" else { return error(404, "no such route") }
        return lock.withLock {
            if parts.count == 1 {
                switch method {
                case "GET", "HEAD":
                    let all = persons.keys.sorted().compactMap { persons[$0] }
                    return json(200, all)
                case "POST":
                    guard var fields = object(body) else { return error(400, "the body must be a JSON object") }
                    // An id given in the body (`person_id` or `id`, a number or a numeric string) is used;
                    // otherwise the next free one is assigned.
                    let given = Self.givenID(fields)
                    if given == nil, fields["person_id"] != nil || fields["id"] != nil {
                        return error(400, "person_id must be a positive whole number")
                    }
                    if let id = given, persons[id] != nil { return error(409, "person \(id) exists already") }
                    while persons[nextID] != nil { nextID += 1 }
                    let id = given ?? nextID
                    if given == nil { nextID += 1 }
                    if fields["person_id"] == nil { fields["id"] = id }
                    fields["change_date"] = Self.now()
                    persons[id] = fields
                    var a = json(201, fields)
                    a.headers.append(("Location", "/persons/\(id)"))
                    return a
                default:
                    return error(405, "use GET or POST on /persons")
                }
            }
            guard parts.count == 2, let id = Int(parts[1]) else { return error(404, "no such route") }
            guard let current = persons[id] else { return error(404, "person \(id) not found") }
            switch method {
            case "GET", "HEAD":
                return json(200, current)
            case "PUT", "PATCH":
                guard let fields = object(body) else { return error(400, "the body must be a JSON object") }
                var updated = method == "PUT" ? fields : current.merging(fields) { _, new in new }
                if updated["person_id"] == nil { updated["id"] = id }
                updated["change_date"] = Self.now()
                persons[id] = updated
                return json(200, updated)
            case "DELETE":
                persons.removeValue(forKey: id)
                return Answer(status: 204, body: Data())
            default:
                return error(405, "method not allowed")
            }
        }
    }

    static func givenID(_ fields: [String: Any]) -> Int? {
        for key in ["person_id", "id"] {
            if let n = fields[key] as? Int, n > 0 { return n }
            if let s = fields[key] as? String, let n = Int(s), n > 0 { return n }
        }
        return nil
    }

    private func object(_ body: Data) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
    }

    private func json(_ status: Int, _ value: Any) -> Answer {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data()
        return Answer(status: status, body: data + Data([0x0A]), headers: [("Content-Type", "application/json")])
    }

    private func error(_ status: Int, _ message: String) -> Answer {
        json(status, ["error": message])
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}

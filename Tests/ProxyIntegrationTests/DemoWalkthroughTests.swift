import EtagCache
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The README's walkthrough, against the real demo binary behind a real etag-proxy process, driven by curl.
@Suite("The demo walkthrough: POST, GET, 304, PUT with If-Match, 412 on the stale tag", .serialized)
struct DemoWalkthroughTests {
    func curl(_ args: [String]) throws -> HTTPMessage {
        let r = try runCurl(["-si"] + args)
        let text = r.out.replacingOccurrences(of: "\r\n", with: "\n")
        let parts = text.components(separatedBy: "\n\n")
        let lines = parts[0].split(separator: "\n").map(String.init)
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let c = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<c]), line[line.index(after: c)...].trimmingCharacters(in: .whitespaces))
        }
        return HTTPMessage(
            startLine: lines.first ?? "", headers: headers,
            body: Array(parts.dropFirst().joined(separator: "\n\n").utf8))
    }

    @Test func theSeedsWalkthrough() throws {
        let apiPort = try freePort()
        let demo = Process()
        demo.executableURL = URL(fileURLWithPath: try proxyBinary()).deletingLastPathComponent().appendingPathComponent(
            "etag-demo-api")
        demo.arguments = ["--listen", "127.0.0.1:\(apiPort)"]
        demo.standardError = FileHandle.nullDevice
        try processLaunchLock.withLock { try demo.run() }
        defer {
            kill(demo.processIdentifier, SIGTERM)
            demo.waitUntilExit()
        }
        let port = try freePort()
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(apiPort)\naccess_log: off\n"
                + "cache:\n  name: etag-proxy-walkthrough-\(getpid())\n", port: port)
        defer {
            proxy.signal(SIGTERM)
            _ = proxy.waitForExit()
            SharedCache.unlink(name: "/etag-proxy-walkthrough-\(getpid())")
        }
        let base = "http://127.0.0.1:\(port)"
        let json = ["-H", "Content-Type: application/json"]

        let created = try curl(
            ["-X", "POST", "\(base)/persons"] + json + ["-d", "{\"firstname\":\"Ada\",\"lastname\":\"Lovelace\"}"])
        #expect(created.status == 201)
        let first = try #require(created.header("ETag"))
        #expect(created.header("Location") == "/persons/1")

        let got = try curl(["\(base)/persons/1"])
        #expect(got.status == 200)
        #expect(got.header("ETag") == first, "the POST's tag is the tag of the next GET")

        let unquoted = first.replacingOccurrences(of: "\"", with: "")
        let notModified = try curl(["\(base)/persons/1", "-H", "If-None-Match:\(unquoted)"])
        #expect(notModified.status == 304)
        #expect(notModified.header("Cache-Status") == "etag-proxy; hit")

        let updated = try curl(
            ["-X", "PUT", "\(base)/persons/1"] + json + [
                "-H", "If-Match: \(first)", "-d", "{\"firstname\":\"Ada\",\"lastname\":\"King\"}",
            ])
        #expect(updated.status == 200)
        let second = try #require(updated.header("ETag"))
        #expect(second != first)

        let conflict = try curl(
            ["-X", "PUT", "\(base)/persons/1"] + json + [
                "-H", "If-Match: \(first)", "-d", "{\"firstname\":\"Ada\",\"lastname\":\"Byron\"}",
            ])
        #expect(conflict.status == 412)
        #expect(conflict.header("Content-Type") == "application/problem+json")
        #expect(conflict.bodyText.contains("GET it again"))

        let newest = try curl(["\(base)/persons/1"])
        #expect(newest.header("ETag") == second)
        #expect(newest.bodyText.contains("\"lastname\":\"King\""))

        let again = try curl(
            ["-X", "PUT", "\(base)/persons/1"] + json + [
                "-H", "If-Match: \(second)", "-d", "{\"firstname\":\"Ada\",\"lastname\":\"Byron\"}",
            ])
        #expect(again.status == 200)
        #expect(again.bodyText.contains("Byron"))
    }

    /// The demo API and a proxy in front of it; `body` gets the proxy's base URL.
    func withDemo(_ body: (String) throws -> Void) throws {
        let apiPort = try freePort()
        let demo = Process()
        demo.executableURL = URL(fileURLWithPath: try proxyBinary()).deletingLastPathComponent().appendingPathComponent(
            "etag-demo-api")
        demo.arguments = ["--listen", "127.0.0.1:\(apiPort)"]
        demo.standardError = FileHandle.nullDevice
        try processLaunchLock.withLock { try demo.run() }
        defer {
            kill(demo.processIdentifier, SIGTERM)
            demo.waitUntilExit()
        }
        let port = try freePort()
        let region = "etag-proxy-walkthrough2-\(getpid())"
        let proxy = try ProxyProcess(
            yaml: "listen: 127.0.0.1:\(port)\nupstream: http://127.0.0.1:\(apiPort)\naccess_log: off\n"
                + "cache:\n  name: \(region)\n", port: port)
        defer {
            proxy.signal(SIGTERM)
            _ = proxy.waitForExit()
            SharedCache.unlink(name: "/" + region)
        }
        try body("127.0.0.1:\(port)")
    }

    /// The README's walkthrough block, pasted into bash as it stands (only the port changed): the seed's own
    /// bodies (`person_id`, `person_name`), the tag captured in a shell variable.
    @Test func theReadmeWalkthroughRunsAsPasted() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- walkthrough -->\n```sh\n"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let script = String(readme[start.upperBound..<end.lowerBound])
        #expect(script.contains("person_name"))
        try withDemo { base in
            let r = try runProcess(
                "/bin/bash", ["-c", script.replacingOccurrences(of: "localhost:8080", with: base)])
            let statuses = r.out.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("HTTP/1.1 ") }.map {
                $0.dropFirst(9).prefix(3)
            }
            #expect(statuses == ["201", "200", "304", "200", "412", "200"], "\(r.out)\n\(r.err)")
            #expect(r.out.contains("\"person_name\":\"Wim\""))
            #expect(r.out.contains("Location: /persons/1"))
        }
    }
}

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
}

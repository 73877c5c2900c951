import Testing
@testable import EtagCore

@Suite("Config scalar forms: durations, sizes, addresses")
struct ConfigValuesTests {
    @Test func durations() {
        #expect(ConfigValues.duration("250ms") == 250)
        #expect(ConfigValues.duration("30s") == 30_000)
        #expect(ConfigValues.duration("5m") == 300_000)
        #expect(ConfigValues.duration("1h") == 3_600_000)
        #expect(ConfigValues.duration("1.5s") == 1500)
        #expect(ConfigValues.duration("10") == 10_000)
        #expect(ConfigValues.duration("10x") == nil)
        #expect(ConfigValues.duration("-1s") == nil)
        #expect(ConfigValues.duration("") == nil)
    }

    @Test func sizes() {
        #expect(ConfigValues.size("64KiB") == 65536)
        #expect(ConfigValues.size("10MiB") == 10 * 1024 * 1024)
        #expect(ConfigValues.size("1GiB") == 1 << 30)
        #expect(ConfigValues.size("512") == 512)
        #expect(ConfigValues.size("2k") == 2048)
        #expect(ConfigValues.size("1MB") == 1_000_000)
        #expect(ConfigValues.size("12 parsecs") == nil)
    }

    @Test func listenAddresses() {
        #expect(ConfigValues.listen("0.0.0.0:8080") == ListenAddress(host: "0.0.0.0", port: 8080))
        #expect(ConfigValues.listen("[::1]:80") == ListenAddress(host: "::1", port: 80))
        #expect(ConfigValues.listen(":9") == ListenAddress(host: "0.0.0.0", port: 9))
        #expect(ConfigValues.listen("localhost") == nil)
        #expect(ConfigValues.listen("a:99999") == nil)
    }

    @Test func upstreamURLs() throws {
        let u = try ConfigValues.upstream("http://api.internal:9000/v1/").get()
        #expect(u.host == "api.internal" && u.port == 9000 && u.basePath == "/v1")
        #expect(try ConfigValues.upstream("http://api").get().port == 80)
        #expect(try ConfigValues.upstream("http://[::1]:81").get().authority == "[::1]:81")
        let tls = try ConfigValues.upstream("https://a").get()
        #expect(tls.isTLS && tls.port == 443 && tls.authority == "a", "https: port 443, omitted from Host")
        #expect(try ConfigValues.upstream("https://a:8443").get().authority == "a:8443")
        #expect(try ConfigValues.upstream("http://a:443").get().authority == "a:443")
        #expect((try? ConfigValues.upstream("ftp://a").get()) == nil)
        #expect((try? ConfigValues.upstream("api:80").get()) == nil)
        #expect((try? ConfigValues.upstream("http://u@api").get()) == nil)
        #expect(
            try ConfigValues.upstream("http://a/v1/people%20x/~me;v=1:@").get().basePath == "/v1/people%20x/~me;v=1:@")
    }

    /// Found by the config fuzz target: the base path and the host go into every request line and Host field sent
    /// upstream, so a byte a URL cannot hold is refused when the config is loaded.
    @Test(arguments: [
        "http://i/ /", "http://a/v 1", "http://a/x\u{7f}", "http://a/%zz", "http://a/%4", "http://a/\u{e9}",
        "http://a/../x", "http://a/v1/./x", "http://a/%2e%2e/x", "http://a/v1/%2E", "http://a\tb",
        "http://a\r\nX-Injected: 1/", "http://a\"b",
        "http://[::1\n]:80", "http://a%/x\u{0}",
    ])
    func upstreamURLsThatCannotGoIntoARequestLineAreRefused(_ text: String) {
        #expect((try? ConfigValues.upstream(text).get()) == nil, "\(text.debugDescription)")
    }
}

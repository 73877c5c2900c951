import EtagHTTP
import Testing
@testable import EtagCore

@Suite("Cache keys, parents, same-origin locations, response directives, SHA-1 tags")
struct CacheKeyTests {
    let builder = CacheKeyBuilder(origin: "http://127.0.0.1:9000", keyHeaders: ["authorization", "accept-encoding"])
    let hasher = SHA1Hasher()

    func request(_ s: String) throws -> RequestHead {
        let raw = Array(s.utf8)
        return try raw.withUnsafeBytes { b -> RequestHead in
            guard case .complete(let h, _) = try RequestParser.parse(b, limits: HTTPLimits()) else {
                throw HTTPParseError(0, "")
            }
            return h
        }
    }

    @Test func keySeparatesUsersAndEncodingsButNotHeadFromGet() throws {
        let a = try request("GET /p?q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\n\r\n")
        let b = try request("GET /p?q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer b\r\n\r\n")
        let head = try request("HEAD /p?q=1 HTTP/1.1\r\nHost: H\r\nauthorization: Bearer a\r\n\r\n")
        let gz = try request(
            "GET /p?q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\nAccept-Encoding: gzip\r\n\r\n")
        let other = try request("GET /p?q=2 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\n\r\n")
        let ka = builder.keyDigest(a, hasher: hasher)
        #expect(ka != builder.keyDigest(b, hasher: hasher))
        #expect(ka == builder.keyDigest(head, hasher: hasher))
        #expect(ka != builder.keyDigest(gz, hasher: hasher))
        #expect(ka != builder.keyDigest(other, hasher: hasher))
        #expect(builder.uriDigest(a) == builder.uriDigest(other), "the URI digest ignores the query")
        let otherOrigin = CacheKeyBuilder(
            origin: "http://127.0.0.1:9001", keyHeaders: ["authorization", "accept-encoding"])
        #expect(otherOrigin.keyDigest(a, hasher: hasher) != ka, "a changed upstream never reuses entries")
        #expect(builder.keyDigest(a, vary: [Array("x-tenant".utf8)], hasher: hasher) != ka)
    }

    /// The key material must not let one request's fields pose as another's (the key separates users).
    @Test func keyFieldsCannotBeConfused() throws {
        func key(_ fields: String, target: String = "/p", vary: [String] = []) throws -> Digest20 {
            builder.keyDigest(
                try request("GET \(target) HTTP/1.1\r\nHost: h\r\n\(fields)\r\n"),
                vary: vary.map { Array($0.utf8) }, hasher: hasher)
        }
        let none = try key("")
        #expect(try key("Authorization: \r\n") != none, "an empty credential is not an absent one")
        #expect(
            try key("Authorization: gzip\r\n") != key("Accept-Encoding: gzip\r\n"), "which field holds a value counts")
        #expect(try key("Authorization: a\r\nAccept-Encoding: b\r\n") != key("Authorization: a,b\r\n"))
        #expect(
            try key("Accept-Encoding: a\r\nAccept-Encoding: b\r\n") == key("Accept-Encoding: a,b\r\n"),
            "a list field's lines combine (RFC 9110 §5.3); a repeated Authorization is refused by the parser")
        #expect(try key("AUTHORIZATION: a\r\n") == key("authorization: a\r\n"), "field names ignore case")
        #expect(try key("X-T: 1\r\n", vary: ["x-t"]) != key("X-T: 2\r\n", vary: ["x-t"]))
        #expect(try key("", vary: ["x-t"]) != none, "a Vary variant never shares the plain key")
        #expect(try key("", target: "/p?a") != key("", target: "/p%3Fa"))
    }

    /// Keys name the resource as the upstream receives it: one entry, generation and lease per resource.
    @Test func spellingsOfOneResourceShareTheirKeys() throws {
        let keys = CacheKeyBuilder(
            origin: "http://u", keyHeaders: [], includeHost: false, ignoreTrailingSlash: true)
        func k(_ target: String, host: String = "a") throws -> (Digest20, Digest20) {
            let r = try request("GET \(target) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            return (keys.keyDigest(r, hasher: hasher), keys.uriDigest(r))
        }
        let base = try k("/persons/9")
        for same in ["/persons/9/", "//persons/9", "/persons//9", "/persons/9//"] {
            #expect(try k(same) == base, "\(same)")
        }
        #expect(try k("/persons/9", host: "b") == base, "Host is not forwarded, so it is not in the keys")
        #expect(try k("/persons/9?x=1").0 == k("/persons/9/?x=1").0, "the query follows the canonical path")
        #expect(try k("/persons/9?x=1").1 == base.1, "the URI digest ignores the query")
        #expect(try k("/persons/9?x=1").0 != base.0)
        #expect(try k("/") == k("//"))
        #expect(try k("/persons") != base)
        #expect(try k("/persons/9?a=//") != k("/persons/9?a=/"), "the query is not canonicalized")
        let strict = CacheKeyBuilder(origin: "http://u", keyHeaders: [], includeHost: true, ignoreTrailingSlash: false)
        let a = try request("GET /p HTTP/1.1\r\nHost: a\r\n\r\n")
        let slash = try request("GET /p/ HTTP/1.1\r\nHost: a\r\n\r\n")
        let b = try request("GET /p HTTP/1.1\r\nHost: b\r\n\r\n")
        #expect(strict.uriDigest(a) != strict.uriDigest(slash), "keys.ignore_trailing_slash: false")
        #expect(strict.uriDigest(a) != strict.uriDigest(b), "with preserve_host the Host names the resource")
    }

    @Test func parents() {
        #expect(CacheKeyBuilder.parent(of: Array("/persons/1".utf8)) == Array("/persons".utf8))
        #expect(CacheKeyBuilder.parent(of: Array("/persons/1/".utf8)) == Array("/persons".utf8))
        #expect(CacheKeyBuilder.parent(of: Array("/persons".utf8)) == Array("/".utf8))
        #expect(CacheKeyBuilder.parent(of: Array("/".utf8)) == nil)
    }

    @Test func sameOriginLocations() {
        let host = Array("api.example".utf8)
        #expect(CacheKeyBuilder.sameOriginPath(Array("/persons/2".utf8), host: host) == Array("/persons/2".utf8))
        #expect(CacheKeyBuilder.sameOriginPath(Array("http://API.example/p".utf8), host: host) == Array("/p".utf8))
        #expect(CacheKeyBuilder.sameOriginPath(Array("http://evil.example/p".utf8), host: host) == nil)
        #expect(CacheKeyBuilder.sameOriginPath(Array("//evil.example/p".utf8), host: host) == nil)
    }

    func directives(_ fields: String) throws -> ResponseCacheDirectives {
        let raw = Array("HTTP/1.1 200 OK\r\n\(fields)\r\n".utf8)
        let head = try raw.withUnsafeBytes { b -> ResponseHead in
            guard case .complete(let h, _) = try ResponseParser.parse(b, requestMethod: .get, limits: HTTPLimits())
            else { throw HTTPParseError(0, "") }
            return h
        }
        return ResponseCacheDirectives(head.head)
    }

    @Test func directives() throws {
        let d = try directives("Cache-Control: max-age=60, s-maxage=\"10\", private\r\nVary: Accept, X-Tenant\r\n")
        #expect(d.maxAge == 10)
        #expect(d.isPrivate && !d.noStore && !d.noCache)
        #expect(d.vary == [Array("accept".utf8), Array("x-tenant".utf8)])
    }

    @Test func aContentCodingVariesOnAcceptEncoding() throws {
        let ae = Array("accept-encoding".utf8)
        #expect(try directives("Content-Encoding: gzip\r\n").vary == [ae])
        #expect(try directives("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n").vary == [ae])
        #expect(try directives("Content-Encoding: identity\r\n").vary == [])
        #expect(try directives("Vary: Accept\r\n").vary == [Array("accept".utf8)])
    }

    @Test func sha1TagsAreQuotedLowercaseHex() {
        // SHA-1("abc") from FIPS 180-2.
        let d = hasher.hash(Array("abc".utf8))
        #expect(String(decoding: d.quotedETag, as: UTF8.self) == "\"a9993e364706816aba3e25717850c26c9cd0d89d\"")
        hasher.update(Array("a".utf8))
        hasher.update(Array("bc".utf8))
        #expect(hasher.finish() == d, "streamed updates give the same digest")
    }

    /// Small updates are staged and handed to OpenSSL together; large ones go straight through. Any mix of
    /// piece sizes gives the digest of the whole (FIPS 180-2: one million "a" → 34aa973c…).
    @Test(arguments: [[1], [3, 61, 1], [127, 129], [255, 2], [256], [300], [1, 200, 1000, 7], [4096]])
    func stagedAndDirectUpdatesGiveOneDigest(_ pattern: [Int]) {
        let total = 1_000_000
        let a = [UInt8](repeating: UInt8(ascii: "a"), count: 4096)
        var sent = 0
        var k = 0
        while sent < total {
            let n = min(pattern[k % pattern.count], total - sent)
            a.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            sent += n
            k += 1
        }
        #expect(String(decoding: hasher.finish().hex, as: UTF8.self) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        hasher.update("ab")
        hasher.reset()  // a reset drops staged bytes too
        #expect(
            String(decoding: hasher.hash(Array("abc".utf8)).hex, as: UTF8.self)
                == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    /// Golden digests: the key material is a stored format (shared across processes and releases through the
    /// shared region), so how it is gathered may change but the digest may not — including material longer
    /// than the gathering buffer (hashed in pieces) and one piece longer than it.
    @Test(arguments: [
        (
            "GET /p?q=1 HTTP/1.1\r\nHost: H.example\r\nAuthorization: Bearer a\r\nAccept-Encoding: gzip\r\n\r\n", false,
            "86c978cb5dace35299a0a215b809d8f51980f2f5"
        ),
        (
            "GET //a//b/?x HTTP/1.1\r\nHost: h\r\nX-Tenant: t1\r\nx-tenant: t2\r\n\r\n", true,
            "398ab6c5c3db683b2a0c5802978c2ea5780f18bb"
        ),
        (
            "GET /" + String(repeating: "p", count: 300) + " HTTP/1.1\r\nHost: h\r\nAuthorization: "
                + String(repeating: "a", count: 700) + "\r\nAccept-Encoding: " + String(repeating: "z", count: 400)
                + "\r\n\r\n", true, "72a8c1e569b7a37d366455ec23475f67c2ef02f1"
        ),
    ])
    func keyDigestsAreStable(raw: String, withVary: Bool, hex: String) throws {
        let vary = withVary ? [Array("x-tenant".utf8)] : []
        let d = builder.keyDigest(try request(raw), vary: vary, hasher: hasher)
        #expect(String(decoding: d.hex, as: UTF8.self) == hex)
    }
}

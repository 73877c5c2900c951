// libFuzzer target: cache keys. Invariants: spellings that differ only by repeated or trailing slashes share
// both digests; the query never changes the URI digest.
import EtagCore
import EtagHTTP

let keys = CacheKeyBuilder(origin: "http://u", keyHeaders: ["authorization"], includeHost: false, ignoreTrailingSlash: true)
let hasher = SHA1Hasher()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCacheKey(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    guard case .complete(let req, _)? = try? RequestParser.parse(buf, limits: HTTPLimits()) else { return 0 }
    // Bytes, not a String: a String compares grapheme clusters, and "?" followed by a combining mark is not "?".
    let path = Array(req.head.bytes[req.pathRange])
    guard path.first == UInt8(ascii: "/"), !path.contains(UInt8(ascii: "?")) else { return 0 }
    func head(_ p: [UInt8]) -> RequestHead? {
        let text = Array("GET ".utf8) + p + Array(" HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        guard case .complete(let h, _)? = try? text.withUnsafeBytes({ try RequestParser.parse($0, limits: HTTPLimits()) })
        else { return nil }
        return h
    }
    let slash = [UInt8(ascii: "/")]
    guard let a = head(path), let b = head(slash + path + slash), let q = head(path + Array("?x=1".utf8)) else {
        return 0
    }
    check(keys.uriDigest(a) == keys.uriDigest(b), "\(String(decoding: path, as: UTF8.self)): slashes split the URI digest")
    check(keys.keyDigest(a, hasher: hasher) == keys.keyDigest(b, hasher: hasher), "\(String(decoding: path, as: UTF8.self)): slashes split the key")
    check(keys.uriDigest(a) == keys.uriDigest(q), "\(String(decoding: path, as: UTF8.self)): the query changed the URI digest")
    return 0
}

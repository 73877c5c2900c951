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
    let path = req.head.string(req.pathRange)
    guard path.hasPrefix("/"), !path.contains("?") else { return 0 }
    func head(_ p: String) -> RequestHead? {
        let text = Array("GET \(p) HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        guard case .complete(let h, _)? = try? text.withUnsafeBytes({ try RequestParser.parse($0, limits: HTTPLimits()) })
        else { return nil }
        return h
    }
    guard let a = head(path), let b = head("/" + path + "/"), let q = head(path + "?x=1") else { return 0 }
    check(keys.uriDigest(a) == keys.uriDigest(b), "\(path): slashes split the URI digest")
    check(keys.keyDigest(a, hasher: hasher) == keys.keyDigest(b, hasher: hasher), "\(path): slashes split the key")
    check(keys.uriDigest(a) == keys.uriDigest(q), "\(path): the query changed the URI digest")
    return 0
}

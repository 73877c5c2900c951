// libFuzzer target: the config keys' value parsers (what the loader applies for every YAML scalar and every
// ETAG_PROXY_* variable; the YAML syntax itself is Yams'). The input is `key=value` lines. Invariants: no value
// crashes a parser; a value that is accepted renders back to text that is accepted again and gives the same
// config (the rendering is what --print-config and the README's defaults show, so it must load as itself), except
// for a secret, which the rendering hides.
import EtagCore
import Foundation

let keys = Dictionary(uniqueKeysWithValues: ConfigKeys.all.map { ($0.path, $0) })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var config = ProxyConfig()
    for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(16) {
        guard let eq = line.firstIndex(of: "="), let key = keys[String(line[..<eq])] else { continue }
        let value = String(line[line.index(after: eq)...])
        var next = config
        guard key.apply(&next, value) == nil else { continue }  // refused: whatever it did to `next` is dropped
        config = next
        let shown = key.render(config)
        var again = config
        // An unset value renders as a description in parentheses (`(none)`, the default's rendering), which an
        // empty value sets; a path that merely looks like one, `(a)`, is a value.
        let unset = shown.hasPrefix("(") && shown == key.render(ProxyConfig())
        check(key.apply(&again, unset ? "" : asLoaded(shown, list: key.acceptsList)) == nil, "\(key.path): '\(value)' was accepted but its rendering '\(shown)' is not")
        check(key.render(again) == shown, "\(key.path): '\(shown)' renders as '\(key.render(again))'")
        guard key.hidesSecret else {
            check(again == config, "\(key.path): '\(value)' and its rendering '\(shown)' give different configs")
            continue
        }
        // A secret is shown as `***` or `(set)`, never itself (loading the rendering gives only the placeholder);
        // all else must load as itself.
        if key.path == "fleet.redis", let p = again.fleet.redis?.password {
            check(p == "***", "\(key.path): the rendering '\(shown)' shows the password")
        }
        if key.path == "fleet.redis_password", let p = again.fleet.password {
            check(p == "(set)", "\(key.path): the rendering '\(shown)' shows the password")
        }
        check(withoutSecrets(again) == withoutSecrets(config), "\(key.path): '\(value)' and its rendering '\(shown)' give different configs")
    }
    return 0
}

func withoutSecrets(_ c: ProxyConfig) -> ProxyConfig {
    var c = c
    c.fleet.password = nil
    c.fleet.redis?.password = nil
    return c
}

/// What the loader hands a key for the rendered text: a list key renders as a YAML flow sequence (`[a, b]`), whose
/// items the loader joins with commas.
func asLoaded(_ shown: String, list: Bool) -> String {
    guard list, shown.hasPrefix("["), shown.hasSuffix("]") else { return shown }
    return shown.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        .joined(separator: ",")
}

/// The release this source tree builds (`--version`, the start-up line, `etag_proxy_build_info`).
public enum EtagProxyVersion {
    public static let string = "0.6.0"
}

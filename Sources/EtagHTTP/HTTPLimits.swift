/// Size limits applied while parsing; every one comes from the config.
public struct HTTPLimits: Sendable, Equatable {
    /// Largest request or response head (start line + fields), in bytes. Beyond it: 431 (request) / 502 (response).
    public var maxHeadSize: Int
    /// Most header fields in one head.
    public var maxHeaderCount: Int
    /// Largest chunked trailer section, in bytes.
    public var maxTrailerSize: Int

    public init(maxHeadSize: Int = 32 * 1024, maxHeaderCount: Int = 100, maxTrailerSize: Int = 8 * 1024) {
        self.maxHeadSize = maxHeadSize
        self.maxHeaderCount = maxHeaderCount
        self.maxTrailerSize = maxTrailerSize
    }
}

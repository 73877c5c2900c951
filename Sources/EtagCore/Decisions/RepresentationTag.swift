import EtagHTTP

/// The tag a representation gets: the upstream's own strong ETag when `etag.upstream: keep` and it sent one,
/// otherwise the quoted SHA-1 of the body (RFC 9110 §8.8.3).
public enum RepresentationTag {
    public static func current(etagMode: UpstreamETagMode, upstreamTag: [UInt8]?, digest: () -> Digest20) -> [UInt8] {
        if etagMode == .keep, let upstreamTag { return upstreamTag }
        return digest().quotedETag
    }
}

/// Why a message could not be parsed, with the status the proxy answers it with (RFC 9112, RFC 9110 §15).
public struct HTTPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The status code to answer a bad request with: 400, 431, 501 or 505.
    public let status: Int
    /// A short sentence for the problem+json `detail` member.
    public let detail: String

    public init(_ status: Int, _ detail: String) {
        self.status = status
        self.detail = detail
    }

    public var description: String { "\(status): \(detail)" }

    static func bad(_ detail: String) -> HTTPParseError { HTTPParseError(400, detail) }
}

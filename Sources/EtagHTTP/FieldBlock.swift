/// One header field as offsets into its `FieldBlock`'s bytes.
public struct HeaderField: Sendable, Equatable {
    public var name: Range<Int>
    public var value: Range<Int>
}

/// A parsed head: a private copy of its bytes plus the offsets of every field (no per-field allocation).
public struct FieldBlock: Sendable {
    public var bytes: [UInt8]
    public var fields: [HeaderField]

    public init(bytes: [UInt8], fields: [HeaderField]) {
        self.bytes = bytes
        self.fields = fields
    }

    public static let empty = FieldBlock(bytes: [], fields: [])

    /// Replaces this block's contents with the head in `raw` and parses it with `parse`, reusing the memory
    /// of both arrays when nothing else still holds them (a connection parses head after head into one block:
    /// no allocation per request). The previous contents are gone either way.
    mutating func refill<T>(
        with raw: UnsafeRawBufferPointer,
        _ parse: (UnsafeRawBufferPointer, [UInt8], inout [HeaderField]) throws(HTTPParseError) -> T
    ) throws(HTTPParseError) -> T {
        var b: [UInt8] = []
        var f: [HeaderField] = []
        swap(&b, &bytes)
        swap(&f, &fields)
        // Keep at most a typical head's worth of memory once an unusually large head has passed.
        if b.capacity > 16384 { b = [] } else { b.removeAll(keepingCapacity: true) }
        if f.capacity > 256 { f = [] } else { f.removeAll(keepingCapacity: true) }
        b.append(contentsOf: raw)
        let result = b.withUnsafeBytes { p -> Result<T, HTTPParseError> in
            do throws(HTTPParseError) {
                return .success(try parse(p, b, &f))
            } catch {
                return .failure(error)
            }
        }
        bytes = b
        fields = f
        return try result.get()
    }

    /// Whether field `i`'s name equals the lowercase ASCII `name`, ignoring case.
    @inlinable
    public func name(_ i: Int, is name: StaticString) -> Bool {
        let r = fields[i].name
        guard r.count == name.utf8CodeUnitCount else { return false }
        return bytes.withUnsafeBytes { $0.equalsLowercasePublic(r, name) }
    }

    /// The value range of the first field called `name` (lowercase), if any.
    public func firstValue(_ name: StaticString) -> Range<Int>? {
        for i in fields.indices where self.name(i, is: name) { return fields[i].value }
        return nil
    }

    public func string(_ r: Range<Int>) -> String {
        String(decoding: bytes[r], as: UTF8.self)
    }

}

extension UnsafeRawBufferPointer {
    /// `equalsLowercase` for the other modules, inlined into them.
    @inlinable
    public func equalsLowercasePublic(_ range: Range<Int>, _ name: StaticString) -> Bool {
        equalsLowercase(range, name)
    }
}

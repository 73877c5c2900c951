import Testing

@testable import EtagServer

/// `HeldBytes`: bytes a read put in its free space are counted in place, others are copied; growth keeps them.
@Suite("HeldBytes: in-place reads counted, other bytes copied")
struct HeldBytesTests {
    @Test func bytesReadIntoTheFreeSpaceAreCountedWithoutACopy() throws {
        let h = HeldBytes(capacity: 8)
        let space = try #require(h.space(limit: 100))
        #expect(space.count == 8, "no more than is allocated")
        #expect(h.space(limit: 3)?.count == 3, "no more than asked for")
        // A read of 5 bytes into the space, then handed to append as the decoder would.
        for i in 0..<5 { space[i] = UInt8(i + 1) }
        h.append(UnsafeRawBufferPointer(rebasing: space[0..<5]))
        #expect(h.count == 5)
        #expect(h.capacity == 8, "counted in place: nothing reallocated")
        #expect(h.space(limit: 100)?.baseAddress == space.baseAddress.map { $0 + 5 }, "the space moves on")
        h.withUnsafeBytes { #expect(Array($0) == [1, 2, 3, 4, 5]) }
    }

    @Test func otherBytesAreCopiedAndGrowthKeepsWhatIsHeld() {
        let h = HeldBytes(capacity: 4)
        let a: [UInt8] = [9, 8, 7]
        let b = [UInt8](repeating: 5, count: 20_000)
        a.withUnsafeBytes { h.append($0) }
        b.withUnsafeBytes { h.append($0) }
        #expect(h.count == 20_003)
        #expect(h.capacity >= 20_003)
        h.withUnsafeBytes { #expect(Array($0) == a + b) }
        let empty = HeldBytes()
        #expect(empty.space(limit: 10) == nil)
        empty.withUnsafeBytes { #expect($0.isEmpty) }
    }
}

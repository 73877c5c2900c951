import Glibc
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

    @Test func anAdoptedReadBufferHoldsTheBodyWhereItWasReadAndGrowsBetweenReads() throws {
        // A read of "HEAD" and the body's first 6 bytes, in a malloc'd buffer of 16 bytes.
        let raw = try #require(malloc(16))
        let read = Array("HEADabcdef".utf8)
        read.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: 10) }
        let h = HeldBytes()
        h.adopt(raw, allocated: 16, bodyStart: 4, expected: 100)
        // The decoder hands over the body bytes where they were read: counted, not copied.
        h.append(UnsafeRawBufferPointer(start: raw + 4, count: 6))
        #expect(h.count == 6)
        h.withUnsafeBytes { #expect(Array($0) == Array("abcdef".utf8)) }
        #expect(h.capacity == 12, "not grown while the read is consumed")
        // Before the next read: room for the whole body, the bytes kept.
        let space = try #require(h.space(limit: 1000))
        #expect(h.capacity == 100)
        #expect(space.count == 94)
        h.withUnsafeBytes { #expect(Array($0) == Array("abcdef".utf8)) }
    }
}

/// A small deterministic generator (SplitMix64): the same cases on every run, so a failure reproduces.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mutations of a valid message: 1–4 of byte replaced by a delimiter or control byte, byte inserted, byte
/// deleted, run duplicated, tail cut.
public enum Mutation {
    static let specials: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x2C, 0x3A, 0x22, 0x7F, 0xFF, 0x30, 0x61]

    public static func mutate(_ s: String, _ rng: inout SplitMix64) -> [UInt8] {
        var b = Array(s.utf8)
        for _ in 0..<Int.random(in: 1...4, using: &rng) where !b.isEmpty {
            let i = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: b[i] = specials.randomElement(using: &rng)!
            case 1: b.insert(specials.randomElement(using: &rng)!, at: i)
            case 2: b.remove(at: i)
            case 3: b.insert(contentsOf: b[i..<min(b.count, i + Int.random(in: 1...12, using: &rng))], at: i)
            default: b.removeLast(Int.random(in: 0...min(8, b.count - 1), using: &rng))
            }
        }
        return b
    }
}

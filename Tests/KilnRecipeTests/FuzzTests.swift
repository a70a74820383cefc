import Testing
@testable import KilnRecipe

/// Mutations of a valid recipe: every result loads or gives located errors, never a crash or hang.
@Suite struct FuzzTests {
    static let pieces = Array("{}[]-:,&*!|>'\"#%@`?\t\n  \r\0\u{85}\u{FEFF}${params.}${matrix.C}<<: *a &a ---...\u{1F600}".utf8)

    @Test(arguments: [1, 2, 3, 4])
    func mutatedRecipesNeverCrash(seed: UInt64) {
        var random = SplitMix(seed: seed)
        let base = Array(designExample.utf8)
        for _ in 0..<FuzzTests.iterations {
            var bytes = base
            for _ in 0..<(1 + Int(random.next() % 8)) {
                let at = Int(random.next() % UInt64(bytes.count + 1))
                switch random.next() % 4 {
                case 0 where at < bytes.count: bytes.remove(at: at)
                case 1: bytes.insert(Self.pieces[Int(random.next() % UInt64(Self.pieces.count))], at: at)
                case 2 where at < bytes.count: bytes[at] = UInt8(truncatingIfNeeded: random.next())
                default:  // duplicate a slice: repeats keys, stages and nesting
                    let length = Int(random.next() % 40)
                    let end = min(bytes.count, at + length)
                    bytes.insert(contentsOf: bytes[at..<end], at: Int(random.next() % UInt64(bytes.count + 1)))
                }
            }
            for error in errors(bytes: bytes, existing: designScripts) {
                #expect(error.location.line >= 1 && error.location.column >= 1)
            }
        }
    }

    /// 1,500 per seed in the suite; 50,000 per seed (200,000 recipes) ran clean once by hand.
    static let iterations = 1500
}

import Testing
@testable import KilnRecipe

/// Hostile or broken input gives one clear error, never a crash or a hang.
@Suite struct HostileYAMLTests {
    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let found = errors("kiln: 1\nstages: " + deep + "\n")
        #expect(summary(found) == ["tooComplex@2:\(8 + YAMLParser.maxDepth)"])
        #expect(found.first?.message == "nesting deeper than 64 levels")
    }

    @Test func deepBlockNestingIsRefused() {
        var yaml = "kiln: 1\nstages:\n"
        for level in 0..<200 { yaml += String(repeating: " ", count: 2 * level + 2) + "k\(level):\n" }
        #expect(errors(yaml).first?.code == .tooComplex)
    }

    @Test func billionLaughsStopsAtTheNodeLimit() {
        var yaml = "kiln: 1\nlol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*l\(i - 1)", count: 9).joined(separator: ", ")
            yaml += "lol\(i): &l\(i) [\(refs)]\n"
        }
        yaml += "stages: {a: {run: true}}\n"
        let clock = ContinuousClock()
        var found: [RecipeError] = []
        let elapsed = clock.measure { found = errors(yaml) }
        #expect(found.count == 1)
        #expect(found.first?.code == .tooComplex)
        #expect(found.first?.message == "aliases repeat more than 100000 nodes")
        #expect(elapsed < .seconds(5))
    }

    @Test func matrixExplosionIsRefusedBeforeExpanding() {
        let values = "[" + (0..<100).map(String.init).joined(separator: ", ") + "]"
        let yaml = "kiln: 1\nstages:\n  a:\n    run: echo ${matrix.a}\n    matrix: {a: \(values), b: \(values), c: \(values), d: \(values), e: \(values)}\n"
        let found = errors(yaml)
        #expect(summary(found) == ["tooComplex@5:13"])
        #expect(found.first?.message == "`matrix:` makes 10000000000 variants; at most 10000 are allowed")
    }

    @Test func aliasToAMissingAnchor() {
        #expect(summary(errors("kiln: 1\nstages: *nothing\n")) == ["syntax@2:9"])
    }

    @Test func hugeScalarIsFineButHugeFilesAreNot() {
        let big = String(repeating: "x", count: 1 << 20)
        #expect(errors("kiln: 1\nstages:\n  a: {run: echo \(big)}\n").isEmpty)
        let tooBig = "kiln: 1\n# " + String(repeating: "y", count: YAMLParser.maxBytes) + "\n"
        #expect(summary(errors(tooBig)) == ["unreadable@1:1"])
    }

    @Test func tabsGiveAHint() {
        let found = errors("kiln: 1\nstages:\n\ta: {run: true}\n")
        #expect(found.count == 1)
        #expect(found.first?.code == .syntax)
        #expect(found.first?.location.line == 3)
        #expect(found.first?.hint?.contains("tabs") == true)
    }

    @Test(arguments: [
        [0xFF, 0xFE, 0x00, 0x41], [0x6B, 0x69, 0x6C, 0x6E, 0x3A, 0x20, 0x00, 0x01, 0x02], [0xC3, 0x28, 0x0A],
        Array("kiln: 1\nstages: {a: {run: \"\u{7}\"}}\n".utf8), [0x25, 0x59, 0x41, 0x4D, 0x4C, 0x20, 0x39],
    ] as [[UInt8]])
    func binaryGarbageIsASyntaxError(bytes: [UInt8]) {
        let found = errors(bytes: bytes)
        #expect(found.count == 1)
        #expect(found.first.map { [.syntax, .unreadable, .wrongType].contains($0.code) } == true, "\(found)")
    }

    @Test func randomBytesNeverCrash() {
        var generator = SplitMix(seed: 42)
        let alphabet = Array("kiln: 1\nstages:{}[]-&*!|>'\"#%@`,?\t ab\u{0}\u{FF}".utf8)
        for _ in 0..<2000 {
            let length = Int(generator.next() % 200)
            let bytes = (0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }
            _ = errors(bytes: bytes)
        }
    }

    @Test func unsupportedTagsAreRefused() throws {
        #expect(errors("kiln: 1\nstages: !!python/object {}\n").first?.code == .syntax)
        #expect(try load("kiln: 1\nparams: {v: !!str 10}\nstages: {a: {run: '${params.v}'}}\n").params.first?.value == .string("10"))
    }
}

/// A tiny deterministic generator, so the fuzz loop is the same on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

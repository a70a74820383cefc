import KilnStore
import Testing

@testable import KilnRecipe

/// `image: {name, build: {from, packages}, pinned}` and `kiln image lock`'s rewrite.
@Suite struct ImageBuildSpecTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)
    static let stages = "stages:\n  a: {run: echo hi > o, outputs: [o]}\n"

    @Test func unlockedBuildSpecLoadsWithAHostImage() throws {
        let recipe = try load("kiln: 1\nname: Train_x\nimage:\n  build: {from: debian:trixie, packages: [python3, python3-numpy]}\n" + Self.stages)
        #expect(recipe.image == .host)
        #expect(recipe.imageBuild == ImageBuildSpec(name: "train_x", from: "debian:trixie", packages: ["python3", "python3-numpy"], isLocked: false))
    }

    @Test func pinnedBuildSpecIsThePinnedImage() throws {
        let recipe = try load("kiln: 1\nimage: {name: py, build: {packages: [python3]}, pinned: py@\(Self.digest)}\n" + Self.stages)
        #expect(recipe.image == .pinned(name: "py", digest: Digest(Self.digest)!))
        #expect(recipe.imageBuild?.isLocked == true)
        #expect(recipe.imageBuild?.from == "debian:bookworm", "the default base")
    }

    @Test(arguments: [
        ("image: {build: {from: ubuntu:noble}}", "invalidValue@2:"),
        ("image: {build: {packages: [\"rm -rf\"]}}", "invalidValue@2:"),
        ("image: {pinned: py@\(digest)}", "missingKey@2:"),
        ("image: {build: {}, pin: x}", "unknownKey@2:"),
    ])
    func badBuildSpecsAreErrors(line: String, expected: String) {
        let found = summary(errors("kiln: 1\n\(line)\n" + Self.stages))
        #expect(found.contains { $0.hasPrefix(expected) }, "\(found)")
    }

    @Test func lockAddsPinnedToABlockMappingKeepingTheRest() throws {
        let text = "kiln: 1\n# the image\nimage:   # built by kiln\n  name: py\n  build:\n    from: debian:bookworm\n    packages: [python3]\n" + Self.stages
        let locked = try #require(ImageLock.rewrite(text, reference: "py@\(Self.digest)"))
        #expect(locked == "kiln: 1\n# the image\nimage:   # built by kiln\n  pinned: py@\(Self.digest)\n  name: py\n  build:\n    from: debian:bookworm\n    packages: [python3]\n" + Self.stages)
        #expect(try load(locked).image == .pinned(name: "py", digest: Digest(Self.digest)!))

        let other = "sha256:" + String(repeating: "cd", count: 32)
        let relocked = try #require(ImageLock.rewrite(locked, reference: "py@\(other)"))
        #expect(relocked == locked.replacingOccurrences(Self.digest, other), "an existing pinned: is replaced in place")
    }

    @Test func lockEditsAOneLineFlowMapping() throws {
        let text = "kiln: 1\nimage: {build: {packages: [python3]}}  # note\n" + Self.stages
        let locked = try #require(ImageLock.rewrite(text, reference: "x@\(Self.digest)"))
        #expect(locked == "kiln: 1\nimage: {build: {packages: [python3]}, pinned: x@\(Self.digest)}  # note\n" + Self.stages)
        let other = "sha256:" + String(repeating: "cd", count: 32)
        let relocked = try #require(ImageLock.rewrite(locked, reference: "x@\(other)"))
        #expect(try load(relocked).image == .pinned(name: "x", digest: Digest(other)!))
        #expect(ImageLock.rewrite("kiln: 1\nimage: {build:\n  {packages: [a]}}\n", reference: "x@\(Self.digest)") == nil, "a multi-line flow mapping is left to the user")
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

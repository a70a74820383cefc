import Foundation
import KilnEngine
import KilnImage
import KilnRecipe
import KilnStore
import KilnTestSupport
import Testing

/// Recipes pinned to an image: the key, running on it, and a missing image.
@Suite(.serialized) struct ImageRunTests {
    static func recipe(image: String) -> String {
        """
        kiln: 1
        image: \(image)
        stages:
          a:
            run: cat in.txt > a.txt; test -e /usr/bin/python3 && echo host-usr >> a.txt; true
            inputs: [in.txt]
            outputs: [a.txt]
          b:
            run: cat a.txt a.txt > b.txt
            inputs: [a.txt]
            outputs: [b.txt]
        """
    }

    static let digestA = Digest.of(Array("image a".utf8))
    static let digestB = Digest.of(Array("image b".utf8))

    func keys(image: String, pinned: [ResolvedImage], yaml: String? = nil) throws -> [String: Digest] {
        let dir = ScratchDirectory("planner-image")
        try "hello".write(toFile: dir("in.txt"), atomically: true, encoding: .utf8)
        let recipe = try Recipe(parsing: Array((yaml ?? Self.recipe(image: image)).utf8), file: "recipes/t.yaml", fileExists: { _ in true })
        let planner = Planner(workspace: dir.path, statCache: StatCache(path: nil), hostFingerprint: Digest.of([1]), image: recipe.image, pinnedImages: pinned)
        var out: [String: Digest] = [:]
        for stage in recipe.stages {
            let inputs = try planner.keyInputs(for: stage, in: recipe, upstream: ["a.txt": UpstreamOutput(archive: Digest.of([9]), kind: "file")])
            if case .pinned(_, let d) = recipe.image(for: stage) { #expect(inputs.image == d.description, "the key holds the digest form") }
            out[stage.name] = inputs.key
        }
        return out
    }

    func pinned(_ name: String, _ digest: Digest, env: [String] = []) -> ResolvedImage {
        let record = ImageRecord(name: name, archive: digest, size: 1, entries: 1, env: env, workingDir: nil, source: "/x", createdFrom: "directory")
        return ResolvedImage(name: name, digest: digest, record: record, recordDigest: nil)
    }

    @Test func theImageDigestIsInEveryStagesKeyAndOnlyItsDigest() throws {
        let host = try keys(image: "host", pinned: [])
        let a = try keys(image: "base@\(Self.digestA)", pinned: [pinned("base", Self.digestA)])
        let b = try keys(image: "base@\(Self.digestB)", pinned: [pinned("base", Self.digestB)])
        let renamed = try keys(image: "other@\(Self.digestA)", pinned: [pinned("other", Self.digestA)])
        let withEnv = try keys(image: "base@\(Self.digestA)", pinned: [pinned("base", Self.digestA, env: ["PATH=/opt/bin:/bin"])])
        for stage in ["a", "b"] {
            #expect(a[stage] != host[stage], "host → image changes \(stage)")
            #expect(a[stage] != b[stage], "another digest changes \(stage)")
            #expect(a[stage] == renamed[stage], "the name alone does not change \(stage)")
            #expect(a[stage] != withEnv[stage], "the image's Env is part of \(stage)'s environment")
        }
        #expect(try keys(image: "base@\(Self.digestA)", pinned: [pinned("base", Self.digestA)]) == a, "stable")
    }

    @Test func aStagesOwnImageKeepsItOutOfTheRecipesImageChange() throws {
        let digestC = Digest.of(Array("image c".utf8))
        func yaml(_ recipeImage: Digest) -> String {
            Self.recipe(image: "base@\(recipeImage)") + "\n  c:\n    image: tool@\(digestC)\n    run: echo c > c.txt\n    outputs: [c.txt]\n  d:\n    image: host\n    run: echo d > d.txt\n    outputs: [d.txt]\n"
        }
        let images = [pinned("base", Self.digestA), pinned("base", Self.digestB), pinned("tool", digestC)]
        let before = try keys(image: "", pinned: images, yaml: yaml(Self.digestA))
        let after = try keys(image: "", pinned: images, yaml: yaml(Self.digestB))
        #expect(before["a"] != after["a"] && before["b"] != after["b"], "the stages on the recipe's image")
        #expect(before["c"] == after["c"], "a stage with its own image")
        #expect(before["d"] == after["d"], "a stage with image: host")
    }

    @Test(.enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
    func dryRunShowsEveryStageStaleAfterTheDigestChanges() async throws {
        let ws = try TestWorkspace("kiln: 1\nstages: {}\n", files: ["in.txt": "hello\n"])
        let reference = try importImage(ws, name: "bb", extra: nil)
        try ws.write("recipes/t.yaml", Self.recipe(image: reference))
        let run = await ws.run(["--json"])
        #expect(run.status == 0, "\(run)")
        #expect(ws.read("a.txt") == "hello\n", "ran on the image, without the host's /usr: \(run)")
        #expect(ws.read("b.txt") == "hello\nhello\n")

        let cached = await ws.run(["--dry-run", "--json"])
        #expect(cached.stdout.components(separatedBy: "\"status\":\"cached\"").count - 1 == 2, "\(cached)")

        // Another image (one more file): every stage of the recipe is stale.
        let other = try importImage(ws, name: "bb", extra: "etc/version")
        #expect(other != reference)
        try ws.write("recipes/t.yaml", Self.recipe(image: other))
        let stale = await ws.run(["--dry-run", "--json"])
        #expect(stale.status == 0, "\(stale)")
        #expect(stale.stdout.components(separatedBy: "\"status\":\"run\"").count - 1 == 2, "\(stale)")
        #expect(!stale.stdout.contains("\"status\":\"cached\""), "\(stale)")
    }

    @Test(.enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
    func oneStageOnAnImageTheOthersOnTheHost() async throws {
        let ws = try TestWorkspace("kiln: 1\nstages: {}\n")
        let reference = try importImage(ws, name: "bb", extra: nil)
        try ws.write("recipes/t.yaml", """
            kiln: 1
            stages:
              onhost:
                run: test -e /usr/bin/python3 && echo host > h.txt
                outputs: [h.txt]
              onimage:
                image: \(reference)
                run: test -e /usr/bin/python3 || echo image > i.txt
                outputs: [i.txt]
            """)
        let run = await ws.run()
        #expect(run.status == 0, "\(run)")
        #expect(ws.read("h.txt") == "host\n")
        #expect(ws.read("i.txt") == "image\n")
    }

    /// Issue 6 with issue 5: a run on an image, exported, imported into a cache that never had
    /// the image, replays byte for byte (the bundle carries the image and its record).
    @Test(.enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
    func aBundleOfAnImageRunReplaysWhereTheImageNeverWas() async throws {
        let ws = try TestWorkspace("kiln: 1\nstages: {}\n", files: ["in.txt": "hello\n"])
        let reference = try importImage(ws, name: "bb", extra: nil)
        try ws.write("recipes/t.yaml", Self.recipe(image: reference))
        let run = await ws.run()
        let id = try #require(TestWorkspace.runID(run), "\(run)")
        let other = ScratchDirectory("kiln-image-bundle")
        let bundle = other.path + "/run.kiln"
        let exported = await ws.kiln(["export", id, "-o", bundle])
        #expect(exported.status == 0, "\(exported)")
        let cache = other.path + "/cache"
        #expect(await ws.kiln(["import", bundle], cache: cache, in: other.path).status == 0)
        let replay = await ws.kiln(["replay", id], cache: cache, in: other.path)
        #expect(replay.status == 0 && replay.stdout.contains("identical  a") && replay.stdout.contains("identical  b"), "\(replay)")
        #expect(!replay.stdout.contains("key differs"), "same image, same env: same keys: \(replay)")
        // Without the image the replay says how to get it.
        let bare = other.path + "/bare"
        let importedRun = ChildProcess.kiln(["import", bundle, "--cache", bare])
        #expect(importedRun.status == 0)
        let digest = String(reference.split(separator: "@").last!.dropFirst(7))
        try FileManager.default.removeItem(atPath: bare + "/cas/sha256/\(digest.prefix(2))/\(digest)")
        let missing = await ws.kiln(["replay", id], cache: bare, in: other.path)
        #expect(missing.status != 0 && missing.stderr.contains("kiln import BUNDLE"), "\(missing)")
    }

    func importImage(_ ws: TestWorkspace, name: String, extra: String?) throws -> String {
        let root = ws.dir("image-\(extra == nil ? "a" : "b")")
        try ImageFixtures.makeBusyboxTree(at: root)
        if let extra { try "2\n".write(toFile: root + "/" + extra, atomically: false, encoding: .utf8) }
        let output = ChildProcess.kiln(["image", "import", root, "--name", name, "--cache", ws.dir("cache")])
        #expect(output.status == 0, "\(output)")
        try FileManager.default.removeItem(atPath: root)  // not part of the workspace's inputs
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aMissingImageFailsBeforeAnythingRuns() async throws {
        let missing = "sha256:" + String(repeating: "cd", count: 32)
        let ws = try TestWorkspace(Self.recipe(image: "gone@\(missing)"), files: ["in.txt": "hello\n"])
        let run = await ws.run()
        #expect(run.status == 78, "\(run)")
        #expect(run.stderr.contains("gone@\(missing) is not in the cache"), "\(run)")
        #expect(run.stderr.contains("kiln image import"), "\(run)")
        #expect(run.stderr.contains("kiln import BUNDLE"), "\(run)")
        #expect(!ws.exists("a.txt") && !ws.exists("b.txt"))
        #expect(ws.actionResults == 0)
    }
}

@Suite struct ImageLockRunTests {
    @Test func anUnlockedRecipeImageStopsKilnRunBeforeAnything() async throws {
        let ws = try TestWorkspace("kiln: 1\nimage: {name: py, build: {packages: [python3]}}\nstages:\n  a: {run: echo hi > o, outputs: [o]}\n")
        let run = await ws.run()
        #expect(run.status == 78, "\(run)")
        #expect(run.stderr.contains("kiln image lock recipes/t.yaml"), "\(run)")
        #expect(!ws.exists("o"))
    }
}

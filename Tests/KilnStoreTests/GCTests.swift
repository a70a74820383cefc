import Foundation
import KilnStore
import KilnTestSupport
import Testing

@Suite struct GCTests {
    /// A store with: a ref'd image, two runs (old, new) whose records name archives and logs, an
    /// action result, and garbage.
    struct Fixture {
        let dir = ScratchDirectory()
        let store: Store
        var image, oldRecord, oldArchive, newRecord, newArchive, sharedLog, acBlob, garbage: Digest

        init() throws {
            store = try Store(root: dir("cache"))
            image = try store.put(bytes: Array("image".utf8))
            oldArchive = try store.put(bytes: [UInt8](repeating: 1, count: 10_000))
            newArchive = try store.put(bytes: [UInt8](repeating: 2, count: 10_000))
            sharedLog = try store.put(bytes: Array("log line\n".utf8))
            acBlob = try store.put(bytes: Array("ac output".utf8))
            garbage = try store.put(bytes: Array("nobody names me".utf8))
            oldRecord = try store.put(bytes: Array(#"{"outputs":{"model":"\#(oldArchive)"},"stdout":"\#(sharedLog)"}"#.utf8))
            newRecord = try store.put(bytes: Array(#"{"outputs":{"model":"\#(newArchive)"},"stdout":"\#(sharedLog)"}"#.utf8))
            try store.setRef("images/base", to: image)
            try store.addRun("run-old", record: oldRecord)
            try store.addRun("run-new", record: newRecord)
            try store.setActionResult(Digest.of(Array("key".utf8)), json: Array(#"{"out":"\#(acBlob)"}"#.utf8))
            // Age the old run and the action result by 40 days.
            let old = Date(timeIntervalSinceNow: -40 * 86400)
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir("cache/runs/run-old"))
            let key = Digest.of(Array("key".utf8)).hex
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir("cache/ac/\(key.prefix(2))/\(key)"))
        }
    }

    @Test func defaultKeepsEveryRootAndDropsGarbage() throws {
        let f = try Fixture()
        let report = try f.store.collectGarbage(GCPolicy())
        #expect(report.removedBlobs.map(\.digest) == [f.garbage])
        #expect(report.keptBlobs == 7)
        #expect(!f.store.contains(f.garbage))
        #expect(f.store.contains(f.oldArchive) && f.store.contains(f.sharedLog) && f.store.contains(f.image))
    }

    /// The input-tree index (`trees/`) loses the entries whose archive gc collected, and keeps
    /// the others; `archive(forTree:)` never names a collected blob anyway.
    @Test func theTreeIndexFollowsCollectedArchives() throws {
        let f = try Fixture()
        let goneTree = Digest.of(Array("tree of the garbage".utf8)), keptTree = Digest.of(Array("tree of the new archive".utf8))
        try f.store.setArchive(f.garbage, forTree: goneTree)
        try f.store.setArchive(f.newArchive, forTree: keptTree)
        _ = try f.store.collectGarbage(GCPolicy())
        #expect(f.store.archive(forTree: goneTree) == nil)
        #expect(f.store.archive(forTree: keptTree) == f.newArchive)
        #expect(!FileManager.default.fileExists(atPath: f.dir("cache/trees/\(goneTree.hex.prefix(2))/\(goneTree.hex)")), "the stale entry is gone")
    }

    @Test func dryRunDeletesNothing() throws {
        let f = try Fixture()
        let report = try f.store.collectGarbage(GCPolicy(keepLast: 0, dryRun: true))
        #expect(Set(report.removedRuns) == ["run-old", "run-new"])
        #expect(f.store.contains(f.garbage) && f.store.contains(f.oldRecord))
        #expect(try f.store.run("run-old") != nil)
        let cli = ChildProcess.kiln(["cache", "gc", "--cache", f.dir("cache"), "--keep-last", "0", "--dry-run"])
        #expect(cli.status == 0, "\(cli)")
        #expect(cli.stdout.contains("would delete run run-old") && cli.stdout.contains("would delete blob \(f.garbage)"), "\(cli.stdout)")
        #expect(f.store.contains(f.garbage))
    }

    @Test func keepLastDropsOlderRunsAndWhatOnlyTheyReach() throws {
        let f = try Fixture()
        let report = try f.store.collectGarbage(GCPolicy(keepLast: 1))
        #expect(report.removedRuns == ["run-old"])
        #expect(!f.store.contains(f.oldRecord) && !f.store.contains(f.oldArchive))
        #expect(f.store.contains(f.sharedLog), "still named by the new run's record")
        #expect(f.store.contains(f.newArchive) && f.store.contains(f.image) && f.store.contains(f.acBlob))
    }

    @Test func olderThanDropsOldRunsAndActionResults() throws {
        let f = try Fixture()
        let cli = ChildProcess.kiln(["cache", "gc", "--cache", f.dir("cache"), "--older-than", "30d"])
        #expect(cli.status == 0, "\(cli)")
        #expect(!f.store.contains(f.oldArchive) && !f.store.contains(f.acBlob))
        #expect(f.store.contains(f.newArchive) && f.store.contains(f.image))
        #expect(try f.store.run("run-old") == nil)
        #expect(try f.store.actionResult(Digest.of(Array("key".utf8))) == nil)
    }

    @Test func keepLastProtectsRunsFromOlderThan() throws {
        let f = try Fixture()
        let report = try f.store.collectGarbage(GCPolicy(keepLast: 2, olderThan: 30 * 86400))
        #expect(report.removedRuns.isEmpty)
        #expect(f.store.contains(f.oldArchive))
        #expect(!f.store.contains(f.acBlob), "action results are not runs: --older-than still drops them")
    }

    @Test func maxSizeDropsOldestRootsUntilItFits() throws {
        let f = try Fixture()
        // Everything kept is ~20 KB; 15 KB forces the oldest roots (old run, action result) out.
        let report = try f.store.collectGarbage(GCPolicy(maxSize: 15_000))
        #expect(Set(report.removedRuns) == ["run-old"])
        #expect(!f.store.contains(f.oldArchive))
        #expect(f.store.contains(f.newArchive) && f.store.contains(f.image), "refs and the newest run stay")
        #expect(report.keptBytes <= 15_000)
    }

    @Test(arguments: [("30d", Int64(30 * 86400)), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 1_209_600)])
    func parsesDurations(_ text: String, _ seconds: Int64) throws {
        #expect(try GCPolicy.parseDuration(text) == seconds)
    }

    @Test(arguments: [("20G", Int64(20) << 30), ("500M", 500 << 20), ("1T", 1 << 40), ("4096", 4096), ("20GiB", 20 << 30), ("20GB", 20 << 30), ("1.5K", 1536)])
    func parsesSizes(_ text: String, _ bytes: Int64) throws {
        #expect(try GCPolicy.parseSize(text) == bytes)
    }

    @Test func rejectsBadPolicyArguments() {
        let dir = ScratchDirectory()
        for args in [["--older-than", "30 days"], ["--max-size", "lots"], ["--keep-last", "-1"]] {
            let r = ChildProcess.kiln(["cache", "gc", "--cache", dir("c")] + args)
            #expect(r.status == 64, "\(args): \(r)")
            #expect(!r.stderr.isEmpty)
        }
    }

    @Test func statsCountsByKind() throws {
        let f = try Fixture()
        #expect(ChildProcess.shell("mkdir t && echo x > t/x", currentDirectory: f.dir.path).status == 0)
        _ = try ArchiveWriter().store(source: f.dir("t"), in: f.store)
        let s = try f.store.stats()
        #expect(s.blobs["archive"]?.count == 1)
        #expect(s.blobs["json"]?.count == 2)
        #expect(s.blobs["other"]?.count == 6)
        #expect(s.runs.count == 2 && s.refs.count == 1 && s.actionResults.count == 1)
        let cli = ChildProcess.kiln(["cache", "stats", "--cache", f.dir("cache")])
        #expect(cli.status == 0 && cli.stdout.contains("blobs") && cli.stdout.contains("archive"), "\(cli)")
        let none = ChildProcess.kiln(["cache", "stats", "--cache", f.dir("nothing-here")])
        #expect(none.status == 1 && none.stderr.contains("there is no cache at"), "\(none)")
    }
}

import Foundation
import KilnTestSupport
import Testing

/// A scratch workspace with `recipes/t.yaml`, run through the real `kiln run`.
final class TestWorkspace: @unchecked Sendable {
    let dir = ScratchDirectory("kiln-run")

    init(_ recipe: String, files: [String: String] = [:]) throws {
        try write("recipes/t.yaml", recipe)
        for (path, text) in files { try write(path, text) }
    }

    func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (dir(path) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: dir(path), atomically: true, encoding: .utf8)
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: dir(path), encoding: .utf8) }
    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: dir(path)) }

    /// Runs kiln on a thread of its own: a test blocking in `waitpid` on one of the (two, here)
    /// cooperative pool threads would starve the suite's async tests.
    @discardableResult
    func run(_ args: [String] = []) async -> ChildProcess.Output {
        let arguments = ["run", "--workspace", dir.path] + args
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: ChildProcess.kiln(arguments)) }
        }
    }

    /// The cache's blob files, JSON ones (run records and their stage details, which hold times
    /// and invocation ids) left out.
    func blobsBesideRecords() throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: dir("cache/cas")).filter { path in
            path.count > 64 && FileManager.default.contents(atPath: dir("cache/cas/" + path))?.first != UInt8(ascii: "{")
        }.sorted()
    }

    /// Action results in the cache.
    var actionResults: Int {
        (FileManager.default.enumerator(atPath: dir("cache/ac"))?.allObjects as? [String] ?? [])
            .filter { $0.count > 60 }.count
    }
}

extension ChildProcess.Output {
    func has(_ line: String) -> Bool { stdout.contains(line) }
}

/// End to end through `kiln run` with tiny /bin/sh stages (the sandbox needs user namespaces, as
/// the sandbox tests do).
/// Serialized: each test starts a few sandboxes, and two cores are shared with the other suites.
@Suite(.serialized) struct RunTests {
    static let chain = """
        kiln: 1
        stages:
          a:
            run: cut -c1-3 in.txt > a.txt
            inputs: [in.txt]
            outputs: [a.txt]
          b:
            run: mkdir -p out && cat a.txt a.txt > out/b.txt
            inputs: [a.txt]
            outputs: [out/]
          c:
            run: cat other.txt > c.txt
            inputs: [other.txt]
            outputs: [c.txt]
        """
    static let files = ["in.txt": "hello\n", "other.txt": "other\n"]

    @Test func firstRunRunsAllSecondIsAllCached() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        let first = await ws.run()
        #expect(first.status == 0, "\(first)")
        #expect(first.has("ran     a") && first.has("ran     b") && first.has("ran     c"), "\(first)")
        #expect(ws.read("out/b.txt") == "hel\nhel\n")
        let second = await ws.run()
        #expect(second.status == 0, "\(second)")
        #expect(second.has("0 ran, 3 cached"), "\(second)")
        // Deleted outputs come back from the cache.
        try FileManager.default.removeItem(atPath: ws.dir("out"))
        let third = await ws.run()
        #expect(third.has("0 ran, 3 cached") && ws.read("out/b.txt") == "hel\nhel\n", "\(third)")
    }

    @Test func changingOneInputRerunsOnlyWhatDependsOnIt() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        #expect(await ws.run().status == 0)
        try ws.write("other.txt", "changed\n")
        let out = await ws.run()
        #expect(out.has("cached  a") && out.has("cached  b") && out.has("ran     c"), "\(out)")
        #expect(ws.read("c.txt") == "changed\n")
    }

    @Test func byteIdenticalOutputsKeepDownstreamCached() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        #expect(await ws.run().status == 0)
        try ws.write("in.txt", "help me\n")  // a reruns, but its output is still "hel"
        let out = await ws.run()
        #expect(out.has("ran     a") && out.has("cached  b"), "\(out)")
    }

    @Test func namedStagesRunWithWhatTheyNeed() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        let out = await ws.run(["t", "b"])
        #expect(out.status == 0 && out.has("ran     a") && out.has("ran     b") && !out.has("ran     c"), "\(out)")
    }

    @Test func aFailedStageCachesNothingAndSkipsItsDependents() async throws {
        let recipe = Self.chain.replacingOccurrences(of: "cut -c1-3 in.txt > a.txt", with: "echo half > a.txt; echo boom >&2; exit 3")
        let ws = try TestWorkspace(recipe, files: Self.files)
        let out = await ws.run(["--keep-going"])
        #expect(out.status == 2, "\(out)")
        #expect(out.has("failed  a") && out.has("exited 3") && out.has("a | boom") && out.has("skipped b"), "\(out)")
        #expect(out.has("ran     c"), "--keep-going still runs independent stages: \(out)")
        #expect(!ws.exists("a.txt"), "a failed stage leaves no half outputs")
        #expect(ws.actionResults == 1, "only c is cached")
    }

    @Test func undeclaredWriteFails() async throws {
        let recipe = Self.chain.replacingOccurrences(of: "cut -c1-3 in.txt > a.txt", with: "cut -c1-3 in.txt > a.txt; echo x > stray.txt")
        let ws = try TestWorkspace(recipe, files: Self.files)
        let out = await ws.run()
        #expect(out.status == 2 && out.has("stray.txt") && out.has("does not declare"), "\(out)")
        #expect(!ws.exists("stray.txt") && !ws.exists("a.txt"))
    }

    @Test func writingAnInputFails() async throws {
        let recipe = Self.chain.replacingOccurrences(of: "cut -c1-3 in.txt > a.txt", with: "echo x > in.txt && cut -c1-3 in.txt > a.txt")
        let ws = try TestWorkspace(recipe, files: Self.files)
        let out = await ws.run()
        #expect(out.status == 2 && out.has("failed  a") && out.has("Read-only file system"), "\(out)")
        #expect(ws.read("in.txt") == "hello\n")
    }

    @Test func missingDeclaredOutputFailsClearly() async throws {
        let recipe = Self.chain.replacingOccurrences(of: "outputs: [a.txt]", with: "outputs: [a.txt, extra.txt]")
        let ws = try TestWorkspace(recipe, files: Self.files)
        let out = await ws.run()
        #expect(out.status == 2 && out.has("did not create its declared output extra.txt"), "\(out)")
    }

    @Test func failingGateGivesItsExitCodeAndTable() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              eval:
                run: ["/bin/sh", "-c", "echo '{\\"acc\\": 0.5, \\"loss\\": 0.1}' > m.json"]
                outputs: [m.json]
                metrics: m.json
                gates: ["acc >= 0.9", "loss < 0.2"]
            """)
        let out = await ws.run()
        #expect(out.status == 3, "\(out)")
        #expect(out.has("gates failed") && out.has("acc >= 0.9") && out.has("0.5") && out.has("FAIL") && out.has("pass"), "\(out)")
        let json = await ws.run(["--json"])
        #expect(json.status == 3 && json.stdout.contains(#""event":"gate""#), "\(json)")
        #expect(json.stdout.contains(#""metrics":{"acc":0.5,"loss":0.1}"#) && json.stdout.contains(#""stdoutDigest":"sha256:"#), "\(json)")
    }

    @Test func outputsAreByteIdenticalAfterTheCacheIsDeleted() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        #expect(await ws.run().status == 0)
        let before = try ["a.txt", "out/b.txt", "c.txt"].map { try Data(contentsOf: URL(fileURLWithPath: ws.dir($0))) }
        let archivesBefore = try ws.blobsBesideRecords()
        for path in ["cache", "a.txt", "out", "c.txt"] { try FileManager.default.removeItem(atPath: ws.dir(path)) }
        let out = await ws.run()
        #expect(out.has("3 ran"), "\(out)")
        let after = try ["a.txt", "out/b.txt", "c.txt"].map { try Data(contentsOf: URL(fileURLWithPath: ws.dir($0))) }
        #expect(before == after)
        #expect(try ws.blobsBesideRecords() == archivesBefore, "same blobs (the run records differ: they hold times)")
    }

    @Test func twoIndependentStagesRunAtOnceWithJ2() async throws {
        let stage = "date +%s%N > NAME.t; sleep 1; date +%s%N >> NAME.t"
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              x:
                run: \(stage.replacingOccurrences(of: "NAME", with: "x"))
                outputs: [x.t]
              y:
                run: \(stage.replacingOccurrences(of: "NAME", with: "y"))
                outputs: [y.t]
            """)
        let out = await ws.run(["-j", "2"])
        #expect(out.status == 0, "\(out)")
        let x = (ws.read("x.t") ?? "").split(separator: "\n").compactMap { Int($0) }
        let y = (ws.read("y.t") ?? "").split(separator: "\n").compactMap { Int($0) }
        try #require(x.count == 2 && y.count == 2)
        #expect(x[0] < y[1] && y[0] < x[1], "the two stages overlapped in time")
    }

    /// Parallel stages get different CPUs (the least used), `cpus: 2` gets two; nothing is
    /// pinned to "the first N", which stacked parallel stages on CPU 0.
    @Test func parallelStagesArePinnedToDifferentCPUs() async throws {
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let stage = "grep Cpus_allowed_list /proc/self/status | cut -f2 > NAME.cpu; sleep 0.5"
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              x:
                run: \(stage.replacingOccurrences(of: "NAME", with: "x"))
                outputs: [x.cpu]
              y:
                run: \(stage.replacingOccurrences(of: "NAME", with: "y"))
                outputs: [y.cpu]
              both:
                run: \(stage.replacingOccurrences(of: "NAME", with: "both"))
                outputs: [both.cpu]
                cpus: 2
            """)
        let out = await ws.run(["-j", "2"])
        #expect(out.status == 0, "\(out)")
        let x = ws.read("x.cpu") ?? "", y = ws.read("y.cpu") ?? "", both = ws.read("both.cpu") ?? ""
        #expect(!x.isEmpty && !y.isEmpty && !both.isEmpty, "\(out)")
        if cores >= 2 {
            #expect(x != y, "x and y ran at once on different CPUs: \(x) \(y)")
            #expect(both.contains("-") || both.contains(","), "cpus: 2 is pinned to two CPUs: \(both)")
        } else {
            print("note: one CPU online; only checked that every stage is pinned")
        }
    }

    @Test func recipeErrorsHaveTheirPositionAndExitCode() async throws {
        let ws = try TestWorkspace("kiln: 1\nstages:\n  a:\n    run: true\n    ouputs: [x]\n")
        let out = await ws.run()
        #expect(out.status == 78 && out.stderr.contains("recipes/t.yaml:5:5: error:"), "\(out)")
    }

    @Test func aParamRerunsOnlyTheStagesUsingIt() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            params: {n: 1, m: 2}
            stages:
              uses:
                run: echo ${params.n} > n.txt
                outputs: [n.txt]
              other:
                run: echo ${params.m} > m.txt
                outputs: [m.txt]
            """)
        #expect(await ws.run().status == 0)
        let out = await ws.run(["-p", "n=5"])
        #expect(out.has("ran     uses") && out.has("cached  other") && ws.read("n.txt") == "5\n", "\(out)")
        #expect(await ws.run(["-p", "n=5"]).has("0 ran, 2 cached"))
    }

    @Test func noCacheRunsEverything() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        #expect(await ws.run().status == 0)
        let out = await ws.run(["--no-cache", "--json"])
        #expect(out.status == 0 && out.stdout.contains(#""ran":3"#), "\(out)")
    }

    @Test func aCachedResultWhoseBlobsAreGoneReruns() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        #expect(await ws.run().status == 0)
        try FileManager.default.removeItem(atPath: ws.dir("cache/cas"))
        try FileManager.default.removeItem(atPath: ws.dir("c.txt"))
        let out = await ws.run()
        #expect(out.status == 0 && out.has("ran     c") && ws.read("c.txt") == "other\n", "\(out)")
    }

    @Test func matrixVariantsRunSeparatelyAndAGlobReadsThemAll() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              train:
                matrix: {C: [1, 2]}
                run: echo ${matrix.C} > ${variant}/model.txt
                outputs: [model.txt]
              pick:
                run: cat train@*/model.txt > best.txt
                inputs: ["train@*/model.txt"]
                outputs: [best.txt]
            """)
        let out = await ws.run()
        #expect(out.status == 0 && out.has("ran     train@C=1") && out.has("ran     train@C=2"), "\(out)")
        #expect(ws.read("best.txt") == "1\n2\n")
        #expect(await ws.run().has("0 ran, 3 cached"))
    }

    @Test func aFailedGateSkipsWhatDependsOnTheStage() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              eval:
                run: ["/bin/sh", "-c", "echo '{\\"acc\\": 0.5}' > m.json"]
                outputs: [m.json]
                metrics: m.json
                gates: ["acc >= 0.9"]
              deploy:
                run: cp m.json shipped.json
                inputs: [m.json]
                outputs: [shipped.json]
            """)
        let out = await ws.run()
        #expect(out.status == 3 && out.has("skipped deploy") && out.has("failed a gate"), "\(out)")
        #expect(!ws.exists("shipped.json"))
    }

    @Test func theRecipeMustBeNamedWhenThereAreSeveral() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        try ws.write("recipes/second.yaml", "kiln: 1\nstages:\n  z:\n    run: echo z > z.txt\n    outputs: [z.txt]\n")
        let out = await ws.run()
        #expect(out.status == 78 && out.stderr.contains("2 recipes"), "\(out)")
        let named = await ws.run(["second"])
        #expect(named.status == 0 && named.has("ran     z"), "\(named)")
        let missing = await ws.run(["t", "nope"])
        #expect(missing.status == 64 && missing.stderr.contains("no stage 'nope'"), "\(missing)")
    }

    @Test func stagesSeeTheDefaultEnvironmentAndTheirOwn() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            env: {A: recipe, B: recipe}
            stages:
              e:
                run: echo "$A $B $OMP_NUM_THREADS $HOME $TZ $(pwd) $(hostname)" > env.txt
                env: {B: stage}
                cpus: 2
                outputs: [env.txt]
            """)
        let out = await ws.run()
        #expect(out.status == 0, "\(out)")
        #expect(ws.read("env.txt") == "recipe stage 2 /tmp/home UTC /work kiln\n")
    }

    @Test func aTimeoutFailsTheStage() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              slow:
                run: sleep 20; echo > x
                timeout: 1s
                outputs: [x]
            """)
        let out = await ws.run()
        #expect(out.status == 2 && out.has("failed  slow") && out.has("timed out"), "\(out)")
        #expect(ws.actionResults == 0)
    }

    @Test func aSymlinkOutputIsRefusedButLinksInsideAFolderAreKept() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              s:
                run: echo hi > d/a.txt && ln -s a.txt d/l
                outputs: [d/]
              t:
                run: echo hi > a.txt && ln -s a.txt link
                outputs: [a.txt, link]
            """)
        let out = await ws.run(["--keep-going"])
        #expect(out.status == 2 && out.has("ran     s") && out.has("its output link is a symbolic link"), "\(out)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: ws.dir("d/l")) == "a.txt")
    }

    @Test func dryRunRunsNothing() async throws {
        let ws = try TestWorkspace(Self.chain, files: Self.files)
        let out = await ws.run(["--dry-run"])
        #expect(out.status == 0 && out.has("would run  a") && out.has("3 would run"), "\(out)")
        #expect(!ws.exists("a.txt"))
        #expect(await ws.run().status == 0)
        #expect(await ws.run(["--dry-run"]).has("0 would run, 3 cached"))
    }
}

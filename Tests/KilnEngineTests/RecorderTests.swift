import Foundation
import KilnTestSupport
import Testing

extension TestWorkspace {
    /// Runs any kiln command (not `run`) against this workspace's cache, on a thread of its own.
    @discardableResult
    func kiln(_ args: [String], cache: String? = nil, in directory: String? = nil) async -> ChildProcess.Output {
        let arguments = args + ["--cache", cache ?? dir("cache")]
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: ChildProcess.kiln(arguments, currentDirectory: directory ?? self.dir.path))
            }
        }
    }

    /// The run id `kiln run` printed.
    static func runID(_ output: ChildProcess.Output) -> String? {
        guard let line = output.stdout.split(separator: "\n").first(where: { $0.hasPrefix("run ") && $0.contains(" recorded") }) else { return nil }
        return String(line.split(separator: " ")[1])
    }
}

/// The run recorder end to end: records, `runs`/`show`/`logs`/`diff`, replay, verify, bundles.
@Suite(.serialized) struct RecorderTests {
    /// A small deterministic pipeline with a param, metrics and a folder output.
    static let recipe = """
        kiln: 1
        params: {scale: 2}
        stages:
          prep:
            run: mkdir -p data && cat in.txt in.txt > data/all.txt && echo prepared
            inputs: [in.txt]
            outputs: [data/]
          score:
            run: |
              n=$(wc -l < data/all.txt); printf '{"lines": %d, "scaled": %d}\\n' $n $((n * ${params.scale})) > metrics.json && echo scored >&2
            inputs: [data/]
            outputs: [metrics.json]
            metrics: metrics.json
            gates: ["lines >= 1"]
        """
    static let files = ["in.txt": "a\nb\n"]

    /// A stage whose output holds a random number (not reproducible), beside a stable file.
    static let random = """
        kiln: 1
        stages:
          stamp:
            run: mkdir -p out && echo fixed > out/stable.txt && od -An -N8 -tx8 /dev/urandom > out/random.txt
            outputs: [out/]
        """

    @Test func everyRunIsRecordedCacheHitsIncluded() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let first = await ws.run()
        let second = await ws.run()
        let a = try #require(TestWorkspace.runID(first), "\(first)")
        let b = try #require(TestWorkspace.runID(second), "\(second)")
        #expect(a != b)
        let runs = await ws.kiln(["runs"])
        #expect(runs.status == 0, "\(runs)")
        let lines = runs.stdout.split(separator: "\n")
        #expect(lines.count == 3 && lines[1].hasPrefix(b) && lines[2].hasPrefix(a), "newest first:\n\(runs.stdout)")
        #expect(lines[1].contains("succeeded") && lines[1].contains("lines=4") && lines[1].contains("scaled=8"), "\(runs.stdout)")

        // The second run's record says both stages were hits, and from which run.
        let show = await ws.kiln(["show", String(b.prefix(6)), "--json"])
        let record = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as! [String: Any]
        let stages = record["stages"] as! [[String: Any]]
        #expect(stages.map { $0["status"] as! String } == ["cached", "cached"], "\(show.stdout)")
        let prep = stages[0]
        #expect((prep["inputs"] as! [[String: Any]]).first?["archive"] is String, "workspace inputs are kept for replay")
        #expect((prep["outputs"] as! [String: Any])["data/"] != nil)
        let human = await ws.kiln(["show", b])
        #expect(human.stdout.contains("cached (from run \(a))"), "\(human.stdout)")

        let logs = await ws.kiln(["logs", "latest", "score"])
        #expect(logs.status == 0 && logs.stdout.contains("scored"), "\(logs)")
        let unknown = await ws.kiln(["show", "ffff"])
        #expect(unknown.status == 66 && unknown.stderr.contains("no run id starts with ffff"), "\(unknown)")
        let filtered = await ws.kiln(["runs", "--status", "failed"])
        #expect(filtered.stdout.contains("no runs"), "\(filtered)")
    }

    @Test func recordedBlobsSurviveGCAfterTheActionCacheIsGone() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let first = await ws.run()
        let id = try #require(TestWorkspace.runID(first), "\(first)")
        try FileManager.default.removeItem(atPath: ws.dir("cache/ac"))
        let gc = await ws.kiln(["cache", "gc"])
        #expect(gc.status == 0, "\(gc)")
        // Workspace gone too: the record alone rebuilds everything.
        for path in ["in.txt", "data", "metrics.json"] { try FileManager.default.removeItem(atPath: ws.dir(path)) }
        let replay = await ws.kiln(["replay", id])
        #expect(replay.status == 0, "\(replay)")
        #expect(replay.stdout.contains("identical  prep") && replay.stdout.contains("identical  score"), "\(replay)")
        #expect(ws.actionResults == 0, "replay must not write the action cache")
    }

    @Test func replayFromAnotherDirectoryKeepsTheRebuiltWorkspace() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        let elsewhere = ScratchDirectory("kiln-elsewhere")
        let out = elsewhere.path + "/rebuilt"
        let replay = await ws.kiln(["replay", id, "--stage", "score", "-o", out], in: elsewhere.path)
        #expect(replay.status == 0, "\(replay)")
        #expect(FileManager.default.contents(atPath: out + "/metrics.json") == FileManager.default.contents(atPath: ws.dir("metrics.json")))
        let bad = await ws.kiln(["replay", id, "--stage", "nope"])
        #expect(bad.status != 0 && bad.stderr.contains("has no stage 'nope'"), "\(bad)")
    }

    @Test func exportImportIntoAnEmptyCacheThenReplay() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        let other = ScratchDirectory("kiln-import")
        let a = other.path + "/a.kiln", b = other.path + "/b.kiln"
        #expect(await ws.kiln(["export", id, "-o", a]).status == 0)
        #expect(await ws.kiln(["export", "latest", "-o", b]).status == 0)
        #expect(FileManager.default.contents(atPath: a) == FileManager.default.contents(atPath: b), "bundles are deterministic")
        let cache = other.path + "/cache"
        let imported = await ws.kiln(["import", a], cache: cache, in: other.path)
        #expect(imported.status == 0 && imported.stdout.contains("imported run \(id)"), "\(imported)")
        let replay = await ws.kiln(["replay", id], cache: cache, in: other.path)
        #expect(replay.status == 0 && replay.stdout.contains("reproducible"), "\(replay)")
        let again = await ws.kiln(["import", a], cache: cache, in: other.path)
        #expect(again.status == 0 && again.stdout.contains("(0 new)"), "importing twice is harmless: \(again)")
    }

    /// Every tampered bundle is refused with exit 65, naming the problem, and leaves the cache as it was.
    @Test(arguments: ["flip", "truncate", "drop-blob", "record-names-missing"])
    func tamperedBundlesAreRefused(_ damage: String) async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        let other = ScratchDirectory("kiln-tamper")
        let bundle = other.path + "/b.kiln"
        #expect(await ws.kiln(["export", id, "-o", bundle]).status == 0)
        let expected: String
        switch damage {
        case "flip":
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bundle)))
            // Inside a blob's data: prep's stdout log ("prepared\n"; the record's JSON escapes its newline).
            let log = Array("prepared\n".utf8)
            let at = try #require((0...(bytes.count - log.count)).first { Array(bytes[$0..<($0 + log.count)]) == log })
            bytes[at] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: bundle))
            expected = "hash to"
        case "truncate":
            let bytes = try Data(contentsOf: URL(fileURLWithPath: bundle))
            try bytes.prefix(bytes.count - 3000).write(to: URL(fileURLWithPath: bundle))
            expected = "truncated"
        case "drop-blob":
            // Rebuild the tar without one blob, manifest unchanged.
            let dir = other.path + "/x"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            #expect(ChildProcess.shell("tar -xf \(bundle) -C \(dir) && f=$(ls blobs/sha256 | head -1) && rm blobs/sha256/$f && tar -cf \(bundle) kiln-bundle.json blobs", currentDirectory: dir).status == 0)
            expected = "which the bundle does not hold"
        default:
            // A consistent bundle whose record names a blob that is nowhere: rewrite the record.
            let dir = other.path + "/x"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let script = """
                set -e
                tar -xf \(bundle) -C \(dir) && cd \(dir)
                rec=$(python3 -c 'import json;print(json.load(open("kiln-bundle.json"))["record"][7:])')
                python3 - "$rec" <<'EOF'
                import json, hashlib, sys, os
                def put(obj):
                    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
                    digest = hashlib.sha256(data).hexdigest()
                    open("blobs/sha256/" + digest, "wb").write(data)
                    return digest
                def drop(hexdigest):
                    os.chmod("blobs/sha256/" + hexdigest, 0o644); os.remove("blobs/sha256/" + hexdigest)
                rec = sys.argv[1]
                r = json.load(open("blobs/sha256/" + rec))
                old_detail = r["stages"][0]["detail"][7:]
                d = json.load(open("blobs/sha256/" + old_detail))
                d["stdout"] = "sha256:" + "ab" * 32
                new_detail = put(d)
                r["stages"][0]["detail"] = "sha256:" + new_detail
                new = put(r)
                drop(rec)
                m = json.load(open("kiln-bundle.json"))
                m["record"] = "sha256:" + new
                m["blobs"] = sorted(set(m["blobs"] + ["sha256:" + new, "sha256:" + new_detail]) - {"sha256:" + rec})
                open("kiln-bundle.json", "w").write(json.dumps(m, sort_keys=True))
                EOF
                tar -cf \(bundle) kiln-bundle.json blobs
                """
            let r = ChildProcess.shell(script)
            #expect(r.status == 0, "\(r)")
            expected = "which neither the bundle nor this cache holds"
        }
        let cache = other.path + "/cache"
        let refused = await ws.kiln(["import", bundle], cache: cache, in: other.path)
        #expect(refused.status == 65, "\(refused)")
        #expect(refused.stderr.contains(expected) && refused.stderr.contains("nothing was imported"), "\(refused)")
        let blobs = (FileManager.default.enumerator(atPath: cache + "/cas")?.allObjects as? [String] ?? []).filter { $0.count > 60 }
        #expect(blobs.isEmpty, "no blob entered the cache: \(blobs)")
        let runs = (try? FileManager.default.contentsOfDirectory(atPath: cache + "/runs")) ?? []
        #expect(runs.isEmpty)
        let tmp = (try? FileManager.default.contentsOfDirectory(atPath: cache + "/tmp")) ?? []
        #expect(tmp.filter { $0.hasPrefix("import") }.isEmpty, "temporary files removed: \(tmp)")
    }

    @Test func aRandomOutputIsCaughtByReplayAndVerifyNamingTheFile() async throws {
        let ws = try TestWorkspace(Self.random)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        let replay = await ws.kiln(["replay", id])
        #expect(replay.status == 104, "\(replay)")
        #expect(replay.stdout.contains("out/random.txt: content differs") && !replay.stdout.contains("stable.txt"), "\(replay)")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/diffoscope") {
            // diffoscope's view of the differing file, paths shown relative (recorded/…, rebuilt/…).
            #expect(replay.stdout.contains("diffoscope:") && replay.stdout.contains("--- recorded/random.txt"), "\(replay)")
        } else {
            print("note: diffoscope is not installed (scripts/install-dependencies installs diffoscope-minimal); its part of the report is not checked")
        }
        let verify = await ws.kiln(["verify", id, "--rounds", "2"])
        #expect(verify.status == 104, "\(verify)")
        #expect(verify.stdout.contains("stage 'stamp' is the first whose outputs differ") && verify.stdout.contains("out/random.txt"), "\(verify)")
        let json = await ws.kiln(["verify", id, "--rounds", "1", "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(report["reproducible"] as? Bool == false && report["firstDivergence"] as? String == "stamp", "\(json.stdout)")
    }

    @Test func aDeterministicPipelinePassesVerifyByRunAndByArtifact() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        let verify = await ws.kiln(["verify", id, "--rounds", "3"])
        #expect(verify.status == 0 && verify.stdout.contains("reproducible"), "\(verify)")
        #expect(verify.stdout.contains("round 3:"), "\(verify)")
        // By artifact: the metrics archive's digest from the record.
        let show = await ws.kiln(["show", id, "--json"])
        let record = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as! [String: Any]
        let score = (record["stages"] as! [[String: Any]]).first { $0["name"] as? String == "score" }!
        let digest = ((score["outputs"] as! [String: Any])["metrics.json"] as! [String: Any])["archive"] as! String
        let byArtifact = await ws.kiln(["verify", digest, "--rounds", "1"])
        #expect(byArtifact.status == 0 && byArtifact.stdout.contains("verified prep, score"), "\(byArtifact)")
        let unknown = await ws.kiln(["verify", "sha256:" + String(repeating: "0", count: 64)])
        #expect(unknown.status == 66, "\(unknown)")
    }

    @Test func diffOfTwoRunsWithOneParamChanged() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let a = try #require(TestWorkspace.runID(await ws.run()))
        let b = try #require(TestWorkspace.runID(await ws.run(["-p", "scale=3"])))
        let diff = await ws.kiln(["diff", a, b, "--json"])
        #expect(diff.status == 0, "\(diff)")
        let d = try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as! [String: Any]
        let params = d["params"] as! [[String: Any]]
        #expect(params.count == 1 && params[0]["name"] as? String == "scale" && params[0]["a"] as? String == "int:2" && params[0]["b"] as? String == "int:3", "\(params)")
        let outputs = (d["outputs"] as! [[String: Any]]).map { "\($0["stage"]!) \($0["name"]!)" }
        #expect(outputs == ["score metrics.json"], "only score's output changed: \(outputs)")
        let metrics = d["metrics"] as! [[String: Any]]
        #expect(metrics.count == 1 && metrics[0]["name"] as? String == "scaled" && metrics[0]["delta"] as? Double == 4, "\(metrics)")
        #expect((d["env"] as! [Any]).isEmpty && (d["host"] as! [Any]).isEmpty && (d["image"] as! [Any]).isEmpty)
        let text = await ws.kiln(["diff", a, b])
        #expect(text.stdout.contains("scale: int:2 → int:3") && text.stdout.contains("score scaled: 8 → 12 (+4)"), "\(text.stdout)")
    }

    @Test func statusSaysWhyAStageIsStale() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        await ws.run()
        let clean = await ws.kiln(["status", "--workspace", ws.dir.path, "--exit-code"])
        #expect(clean.status == 0 && clean.stdout.contains("everything is up to date"), "\(clean)")
        try ws.write("in.txt", "a\nb\nc\n")
        let changed = await ws.kiln(["status", "--workspace", ws.dir.path, "--exit-code"])
        #expect(changed.status == 1, "\(changed)")
        #expect(changed.stdout.contains("stale       prep") && changed.stdout.contains("input in.txt changed"), "\(changed)")
        #expect(changed.stdout.contains("stale       score") && changed.stdout.contains("it needs prep, which is stale"), "\(changed)")
        try ws.write("in.txt", "a\nb\n")
        let param = await ws.kiln(["status", "--workspace", ws.dir.path, "-p", "scale=5"])
        #expect(param.stdout.contains("up to date  prep") && param.stdout.contains("param scale: 2 → 5"), "\(param)")
        try FileManager.default.removeItem(atPath: ws.dir("metrics.json"))
        let restorable = await ws.kiln(["status", "--workspace", ws.dir.path, "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(restorable.stdout.utf8)) as! [[String: Any]]
        #expect(report.map { $0["state"] as! String } == ["up-to-date", "outputs-changed"], "\(restorable.stdout)")
    }

    /// A host whose toolchain fingerprint differs (another os-release, bind-mounted in a private
    /// mount namespace) is refused unless --allow-host-drift, which rebuilds and says why the
    /// keys differ.
    @Test(.enabled(if: getuid() == 0, "bind-mounting over /etc/os-release in a private mount namespace needs root (CI runs as root)"))
    func hostDriftIsRefusedUnlessAllowed() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        try ws.write("fake-os-release", "PRETTY_NAME=\"Debian GNU/Linux 99 (future)\"\nID=debian\n")
        @Sendable func replay(_ extra: String) -> ChildProcess.Output {
            ChildProcess.shell("exec unshare -m sh -c 'mount --bind \(ws.dir("fake-os-release")) /etc/os-release && exec \(ChildProcess.kilnPath) replay \(id) --cache \(ws.dir("cache")) \(extra)'")
        }
        let refused = await withCheckedContinuation { c in Thread.detachNewThread { c.resume(returning: replay("")) } }
        #expect(refused.status == 105, "\(refused)")
        #expect(refused.stderr.contains("host toolchain fingerprint") && refused.stderr.contains("distro: Debian GNU/Linux 12 (bookworm) → Debian GNU/Linux 99 (future)"), "\(refused)")
        #expect(!refused.stderr.contains("rebuilding"), "nothing was rebuilt")
        let allowed = await withCheckedContinuation { c in Thread.detachNewThread { c.resume(returning: replay("--allow-host-drift")) } }
        #expect(allowed.status == 0, "\(allowed)")
        #expect(allowed.stdout.contains("its key differs from the record: the host toolchain changed"), "\(allowed)")
    }

    /// The record names the workspace's git commit and whether tracked files differ from it.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/git"), "needs git (Debian's git package)"))
    func theRecordHasTheGitCommitAndDirtyFlag() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let setup = ChildProcess.shell("git init -q && printf 'cache/\\ndata/\\nmetrics.json\\n' > .gitignore && git add -A && git -c user.email=t@e -c user.name=t commit -qm t && git rev-parse HEAD", currentDirectory: ws.dir.path)
        #expect(setup.status == 0, "\(setup)")
        let head = setup.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        func git(_ run: ChildProcess.Output) async throws -> [String: Any] {
            let id = try #require(TestWorkspace.runID(run), "\(run)")
            let show = await ws.kiln(["show", id, "--json"])
            let record = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as! [String: Any]
            return try #require(record["git"] as? [String: Any], "\(show.stdout)")
        }
        let clean = try await git(await ws.run())
        #expect(clean["commit"] as? String == head && clean["dirty"] as? Bool == false, "\(clean)")
        try ws.write("in.txt", "changed\n")
        let dirty = try await git(await ws.run())
        #expect(dirty["commit"] as? String == head && dirty["dirty"] as? Bool == true, "\(dirty)")
    }

    /// Importing into a full disk (a 4 MiB tmpfs in a private mount namespace): exit 74 saying so,
    /// and the cache as it was — no blob, no run, no temporary file.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root (CI runs as root)"))
    func importIntoAFullDiskLeavesTheCacheAsItWas() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              big:
                run: head -c 8000000 /dev/urandom > big.bin
                outputs: [big.bin]
            """)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        #expect(await ws.kiln(["export", id, "-o", ws.dir("run.kiln")]).status == 0)
        let script = """
            K='\(ChildProcess.kilnPath)'; C="$PWD/mnt/cache"
            mkdir mnt && mount -t tmpfs -o size=4m tmpfs mnt || { echo mount-failed; exit 0; }
            "$K" import run.kiln --cache "$C" 2> err.txt; echo "import=$?"
            echo "tmp=$(ls -A "$C/tmp" | wc -l)"
            echo "blobs=$(find "$C/cas" -type f | wc -l)"
            echo "runs=$(ls -A "$C/runs" 2>/dev/null | wc -l)"
            "$K" cache verify --cache "$C" > /dev/null; echo "verify=$?"
            """
        let r = await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: ChildProcess.run("/usr/bin/unshare", ["-m", "/bin/sh", "-c", script], currentDirectory: ws.dir.path)) }
        }
        try #require(!r.stdout.contains("mount-failed"), "could not mount a tmpfs: \(r)")
        #expect(r.stdout == "import=74\ntmp=0\nblobs=0\nruns=0\nverify=0\n", "\(r)")
        let err = ws.read("err.txt") ?? ""
        #expect(err.contains("no space left on device") && !err.contains("Fatal error"), "\(err)")
    }

    /// A run whose blobs are no longer all in the cache is not exported half: it says which are
    /// missing, exits 65 and leaves no file.
    @Test func exportRefusesARunWithMissingBlobs() async throws {
        let ws = try TestWorkspace(Self.recipe, files: Self.files)
        let id = try #require(TestWorkspace.runID(await ws.run()))
        let show = await ws.kiln(["show", id, "--json"])
        let record = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as! [String: Any]
        let score = (record["stages"] as! [[String: Any]]).first { $0["name"] as? String == "score" }!
        let archive = (((score["outputs"] as! [String: Any])["metrics.json"] as! [String: Any])["archive"] as! String).dropFirst(7)
        try FileManager.default.removeItem(atPath: ws.dir("cache/cas/sha256/\(archive.prefix(2))/\(archive)"))
        let out = await ws.kiln(["export", id, "-o", ws.dir("run.kiln")])
        #expect(out.status == 65 && out.stderr.contains("sha256:\(archive)") && out.stderr.contains("no longer holds"), "\(out)")
        #expect(!ws.exists("run.kiln"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: ws.dir.path)) ?? []).allSatisfy { !$0.contains("kiln-tmp") })
    }
}

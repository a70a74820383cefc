import Foundation
import KilnTestSupport
import Testing

/// Ctrl-C and SIGTERM during `kiln run`: the running stages are killed with their whole process
/// trees, nothing of them is cached or left behind, and kiln exits 128+N.
@Suite(.serialized) struct InterruptTests {
    /// Two slow stages (each with a background child) and one that needs them. `sleep`'s argument
    /// is unique to the test, so a process left over is found by its command line.
    static func recipe(marker: String) -> String {
        """
        kiln: 1
        stages:
          a:
            run: "sleep \(marker) & echo ready; sleep \(marker); echo > a.txt"
            outputs: [a.txt]
          b:
            run: "sleep \(marker) & echo ready >&2; sleep \(marker); mkdir -p bdir; echo > bdir/b.txt"
            outputs: [bdir/]
          c:
            run: "cat a.txt > c.txt"
            inputs: [a.txt]
            outputs: [c.txt]
        """
    }

    /// Processes whose command line holds `marker`.
    static func processes(with marker: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return pids.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(marker)
        }
    }

    @Test(arguments: [(SIGINT, true), (SIGTERM, false)])
    func aSignalStopsTheRunningStagesAndLeavesNothing(signal: Int32, json: Bool) async throws {
        // 29.<random digits>: a duration no other process has.
        let marker = "29.\(UInt32.random(in: 100_000...999_999))"
        let ws = try TestWorkspace(Self.recipe(marker: marker))
        let logs = ScratchDirectory("kiln-interrupt")
        let kiln = try BackgroundProcess(ChildProcess.kilnPath,
                                         ["run", "--workspace", ws.dir.path, "-j", "2"] + (json ? ["--json"] : ["--progress", "plain"]),
                                         outputDirectory: logs.path)
        // Both stages have printed: their sandboxes run, sleeps included (and the lines were
        // streamed while the stages still ran). Then the signal. On a thread of its own, so that
        // the stages are surely still running when it comes.
        let ready = json
            ? [#"{"event":"output","line":"ready","stage":"a","stream":"stdout"}"#, #"{"event":"output","line":"ready","stage":"b","stream":"stderr"}"#]
            : ["a | ready", "b ! ready"]
        let observed = await BackgroundProcess.onThread { () -> (running: Int, status: Int32?, took: Duration)? in
            guard kiln.waitForOutput(seconds: 30, { out in ready.allSatisfy(out.contains) }) else { return nil }
            let running = Self.processes(with: marker).count
            let sent = ContinuousClock.now
            kiln.signal(signal)
            let status = kiln.wait(seconds: 10)
            return (running, status, ContinuousClock.now - sent)
        }
        let seen = try #require(observed, "stdout: \(kiln.stdout)\nstderr: \(kiln.stderr)")
        #expect(seen.running >= 4, "two sleeps per stage")
        #expect(seen.status == 128 + signal, "stdout: \(kiln.stdout)\nstderr: \(kiln.stderr)")
        #expect(seen.took < .seconds(5), "kiln took \(seen.took) to stop")

        #expect(Self.processes(with: marker).isEmpty, "no process of the stages is left")
        let staging = (try? FileManager.default.contentsOfDirectory(atPath: ws.dir("cache/tmp"))) ?? []
        #expect(!staging.contains { $0.hasPrefix("stage.") }, "staging folders are removed: \(staging)")
        let workspace = try FileManager.default.contentsOfDirectory(atPath: ws.dir.path)
        #expect(!workspace.contains { $0.hasPrefix(".kiln-restore-") }, "\(workspace)")
        #expect(!ws.exists("a.txt") && !ws.exists("bdir") && !ws.exists("c.txt"), "\(workspace)")
        #expect(ws.actionResults == 0, "no action result for an interrupted stage")

        if json {
            #expect(kiln.stdout.contains(#"{"event":"interrupted","signal":"SIGINT","stages":["a","b"]}"#), "\(kiln.stdout)")
            #expect(kiln.stdout.contains(#""stage":"c","status":"skipped""#), "\(kiln.stdout)")
        } else {
            #expect(kiln.stdout.contains("interrupted by SIGTERM: stopped a, b; 1 not started"), "\(kiln.stdout)")
            #expect(kiln.stdout.contains("3 stages: 0 ran, 0 cached, 0 failed, 1 skipped, 2 interrupted"), "\(kiln.stdout)")
            #expect(kiln.stderr.contains("SIGTERM: stopping the running stages"), "\(kiln.stderr)")
        }

        // Nothing was cached: the next run would run every stage again.
        let plan = await ws.run(["--dry-run"])
        #expect(plan.has("would run  a") && plan.has("would run  b") && plan.has("3 would run, 0 cached"), "\(plan)")
        // The run is recorded as interrupted, its stopped stages as such.
        let runs = await ws.kiln(["runs", "--status", "interrupted", "--json"])
        let list = try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(list.count == 1, "\(runs)")
        let stages = (list.first?["record"] as? [String: Any])?["stages"] as? [[String: Any]] ?? []
        #expect(stages.compactMap { $0["status"] as? String }.sorted() == ["interrupted", "interrupted", "skipped"], "\(stages)")
    }

    /// kiln blocks SIGINT and SIGTERM in its own threads; the stage's command must not inherit that
    /// (it would ignore Ctrl-C forwarded by the sandbox, and `timeout`'s SIGTERM).
    @Test func stagesStartWithNoSignalBlocked() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              mask:
                run: "grep -E '^Sig(Blk|Ign)' /proc/self/status > mask.txt"
                outputs: [mask.txt]
            """)
        let out = await ws.run()
        #expect(out.status == 0, "\(out)")
        let fields = Dictionary(uniqueKeysWithValues: (ws.read("mask.txt") ?? "").split(separator: "\n").map {
            let parts = $0.split(separator: "\t")
            return (String(parts[0]), UInt64(parts.last ?? "", radix: 16) ?? .max)
        })
        #expect(fields["SigBlk:"] == 0, "nothing blocked: \(fields)")
        // (Signal 32, reserved by glibc, may stay ignored: glibc's sigaction refuses to reset it.)
        let intAndTerm: UInt64 = 1 << (UInt64(SIGINT) - 1) | 1 << (UInt64(SIGTERM) - 1)
        #expect((fields["SigIgn:"] ?? .max) & intAndTerm == 0, "SIGINT and SIGTERM not ignored: \(fields)")
    }
}

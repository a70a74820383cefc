import Foundation
@testable import KilnEngine
import KilnTestSupport
import Testing

/// A stage's output, streamed by `kiln run` as it prints it and stored whole with its result.
@Suite(.serialized) struct StreamingTests {
    static let talker = """
        kiln: 1
        stages:
          talk:
            run: sh talk.sh
            inputs: [talk.sh]
            outputs: [t.txt]
        """
    static let script = #"""
        echo one
        echo two >&2
        printf '\377\376 bad\n'
        head -c 10000 /dev/zero | tr '\000' x; echo
        printf 'say "hi"\tback\\slash \033[31mred\033[0m\n'
        printf 'no newline'
        echo > t.txt
        """#
    static let quoted = "say \"hi\"\tback\\slash \u{1B}[31mred\u{1B}[0m"

    @Test func plainModePrefixesEachLineAndTheBlobKeepsEverything() async throws {
        let ws = try TestWorkspace(Self.talker, files: ["talk.sh": Self.script])
        let out = await ws.run(["--progress", "plain"])
        #expect(out.status == 0, "\(out)")
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("talk | one"), "\(out)")
        #expect(lines.contains("talk ! two"), "stderr lines are marked with !: \(out)")
        #expect(lines.contains("talk | \u{FFFD}\u{FFFD} bad"), "bytes that are not UTF-8 decode as U+FFFD: \(out)")
        #expect(lines.contains("talk | no newline"), "a last line without a newline is flushed at the end: \(out)")
        #expect(lines.contains("talk | " + Self.quoted), "plain mode passes a line on as it is: \(out)")
        #expect(lines.contains("talk | " + String(repeating: "x", count: 4096) + " [… cut at 4096 bytes]"), "a 10,000-byte line is cut at 4 KiB")
        #expect(!out.stdout.contains(String(repeating: "x", count: 4097)))
        #expect(lines.contains { $0.hasPrefix("1 stages: 1 ran") } && lines.last?.hasPrefix("run ") == true, "\(out)")

        // The stored logs hold every byte, the cut line included.
        let json = await ws.run(["--no-cache", "--json"])
        let finished = try #require(json.stdout.split(separator: "\n").first { $0.contains(#""event":"finished""#) })
        let event = try #require(try JSONSerialization.jsonObject(with: Data(finished.utf8)) as? [String: Any])
        let stdoutDigest = try #require(event["stdoutDigest"] as? String)
        let stderrDigest = try #require(event["stderrDigest"] as? String)
        let blob = ChildProcess.run(ChildProcess.kilnPath, ["cache", "cat", "--cache", ws.dir("cache"), stdoutDigest])
        #expect(blob.status == 0, "\(blob)")
        #expect(blob.stdout == "one\n\u{FFFD}\u{FFFD} bad\n" + String(repeating: "x", count: 10000) + "\n" + Self.quoted + "\nno newline")
        let errBlob = ChildProcess.run(ChildProcess.kilnPath, ["cache", "cat", "--cache", ws.dir("cache"), stderrDigest])
        #expect(errBlob.stdout == "two\n", "\(errBlob)")
    }

    @Test func jsonHasOneOutputEventPerLine() async throws {
        let ws = try TestWorkspace(Self.talker, files: ["talk.sh": Self.script])
        let out = await ws.run(["--json", "--progress", "tty"])  // --json wins
        #expect(out.status == 0, "\(out)")
        let events = out.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(events.count == out.stdout.split(separator: "\n").count, "every line is a JSON object: \(out)")
        let output = events.filter { $0["event"] as? String == "output" }
        let pairs = output.map { "\($0["stage"] as? String ?? "?") \($0["stream"] as? String ?? "?") \($0["line"] as? String ?? "?")" }
        #expect(pairs.contains("talk stdout one") && pairs.contains("talk stderr two") && pairs.contains("talk stdout no newline"), "\(pairs)")
        #expect(pairs.contains("talk stdout " + Self.quoted), "quotes, tabs, backslashes and escapes survive: \(pairs)")
        #expect(output.count == 6, "one, two, the bad line, the cut line, the quoted one, no newline: \(pairs)")
        // Output comes between the stage's start and its end.
        let kinds = events.compactMap { $0["event"] as? String }
        #expect(kinds.first == "started" && kinds.suffix(2) == ["finished", "summary"], "\(kinds)")
    }

    @Test func ttyModeShowsRunningStagesThenOnlyTheSummary() async throws {
        let ws = try TestWorkspace("""
            kiln: 1
            stages:
              warm:
                run: "echo hot; printf 'col\\\\033[31mor\\\\n'; sleep 0.6; echo > w.txt"
                outputs: [w.txt]
              later:
                run: "cat w.txt > l.txt"
                inputs: [w.txt]
                outputs: [l.txt]
            """)
        let out = await ws.run(["--progress", "tty"])
        #expect(out.status == 0, "\(out)")
        let erase = "\u{1B}[1A\u{1B}[2K"
        #expect(out.stdout.contains(erase), "the block is redrawn in place")
        #expect(out.stdout.range(of: #"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] warm  0\.\d+s"#, options: .regularExpression) != nil, "a running-stage line: \(out.stdout)")
        #expect(out.stdout.contains("ran 0 · cached 0 · failed 0 · running 1 · 0/2 stages"), "\(out.stdout)")
        #expect(out.stdout.contains("warm | hot\n") && out.stdout.contains("warm | color\n"), "escape sequences are dropped: \(out.stdout)")
        #expect(out.stdout.contains("ran     warm") && out.stdout.contains("ran     later"), "\(out.stdout)")
        // The block is gone at the end: after the last erase come only the summary and the cursor.
        let tail = out.stdout.components(separatedBy: erase).last ?? ""
        #expect(tail.hasPrefix("\u{1B}[?25h2 stages: 2 ran, 0 cached, 0 failed, 0 skipped in "), "the cursor is back: \(tail.debugDescription)")
        #expect(tail.contains("the cache saved") && !tail.contains("running"), "\(tail.debugDescription)")
    }

    @Test func lineSplitterHandlesCarriageReturnsCutsAndPartialLines() {
        var splitter = LineSplitter(limit: 8)
        var lines: [String] = []
        func feed(_ s: [UInt8]) { s.withUnsafeBytes { splitter.feed($0) { lines.append($0) } } }
        feed(Array("a\r\nb\rc".utf8))
        feed(Array("d\n 10%\r 50%\r100%\n".utf8))
        feed(Array("0123456789abc\nnext".utf8))
        feed([0xC3])  // half of é: completed by the next read
        feed([0xA9])
        splitter.finish { lines.append($0) }
        #expect(lines == ["a", "cd", "100%", "01234567 [… cut at 8 bytes]", "nexté"])
        // A cut never splits a UTF-8 sequence.
        var cutter = LineSplitter(limit: 4)
        var cut: [String] = []
        Array("abcé!\n".utf8).withUnsafeBytes { cutter.feed($0) { cut.append($0) } }
        #expect(cut == ["abc [… cut at 4 bytes]"])
    }
}

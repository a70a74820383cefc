import FoundationEssentials
@testable import KilnEngine
import KilnRecipe
import KilnStore
import Testing

/// The hand-written JSON reader on the no-op path must agree with JSONDecoder.
struct FastJSONTests {
    static let sample = ActionResult(
        version: ActionResult.currentVersion, stage: "train@C=0.1", outputs: ["model.pkl": Digest.of([1]), "data/": Digest.of([2])],
        outputTrees: ["model.pkl": Digest.of([3]), "data/": Digest.of([4])], outputKinds: ["model.pkl": "file", "data/": "dir"],
        exitStatus: 0, stdout: Digest.of([5]), stderr: Digest.of([6]), metrics: Digest.of([7]), wallSeconds: 1.25e-05,
        cpuSeconds: 3.5, peakMemoryBytes: 123_456_789, invocation: "00ff00ff00ff00ff", detail: Digest.of([8]))

    @Test func actionResultsRoundTripThroughTheFastPath() throws {
        let bytes = Self.sample.encoded()
        let fast = try #require(ActionResult.fastDecode(bytes))
        #expect(fast == Self.sample)
        var old = Self.sample
        old.detail = nil
        old.metrics = nil
        old.invocation = nil
        #expect(ActionResult.fastDecode(old.encoded()) == old, "results written before those fields existed")
    }

    @Test func unusualResultsFallBackInsteadOfMisreading() {
        #expect(ActionResult.fastDecode(Array(#"{"version":2}"#.utf8)) == nil)
        #expect(ActionResult.fastDecode(Array("{".utf8)) == nil)
        #expect(ActionResult.decode(Array("not json".utf8)) == nil)
    }

    @Test(arguments: [
        #"{"a":"x\"y\\z\/\n\t\u00e9\ud83d\ude00","b":[1,-2.5e3,true,false,null],"c":{}}"#,
        #"  [ {"k" : [ ] } , "" ]  "#,
        #""plain""#,
    ])
    func agreesWithJSONDecoder(_ text: String) throws {
        let expected = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(FastJSON.parse(Array(text.utf8)) == expected)
    }

    @Test(arguments: [#"{"a":1"#, #"{"a" 1}"#, #"[1,]"#, "\"\u{01}\"", #""\x""#, #"{"a":1}x"#, #"tru"#, #""\ud800""#])
    func malformedIsNil(_ text: String) {
        #expect(FastJSON.parse(Array(text.utf8)) == nil)
    }

    /// A record written with its hand-spliced stage list reads back equal.
    @Test func runRecordsRoundTrip() throws {
        var ran = RunRecord.StageRecord(name: "train@C=\"1\"", status: "cached", reason: "ok\nreally", key: Digest.of([1]),
                                        argv: ["/bin/sh", "-c", "echo é"], env: ["A": "b"], image: "host:sha256:" + String(repeating: "0", count: 64),
                                        memoryBytes: 1 << 30, timeoutSeconds: 600, inputs: [InputSource(path: "in.txt", kind: "file", tree: Digest.of([2]), archive: Digest.of([3]))],
                                        stdout: Digest.of([4]), stderr: Digest.of([5]), metrics: .object(["acc": .number(0.93)]),
                                        exitStatus: 0, seconds: 1.5e-05, wallSeconds: 2, cachedFrom: "abc", producedBy: "abc")
        let detailBytes = RunRecord.json(ran.detailPart)
        ran.detail = Digest.of(detailBytes)
        let skipped = RunRecord.StageRecord(name: "pack", status: "skipped", reason: "needs train", seconds: 0)
        let gated = RunRecord.StageRecord(name: "eval", status: "ran", seconds: 1, gates: [.init(gate: "acc >= 0.9", value: 0.93, threshold: 0.9, passed: true)])
        let record = RunRecord(
            format: RunRecord.currentFormat, invocation: "00", recipe: .init(name: "r", file: "recipes/r.yaml", text: "stages: {\"stages\":[]}", image: "host"),
            params: ["C": "int:1"], overrides: [], selection: [], trigger: "cli", git: nil,
            host: HostFacts.current(kilnVersion: "t", fingerprint: Digest.of([9])), startedAt: 1.5, seconds: 2,
            status: "succeeded", noCache: false, stages: [ran, skipped, gated])
        let bytes = record.encoded()
        let back = try #require(RunRecord.decode(bytes) { $0 == ran.detail ? detailBytes : nil })
        #expect(back == record)
        #expect(RunRecord.decode(bytes) { _ in nil } == nil, "a missing detail makes the record unreadable, not partial")
    }
}

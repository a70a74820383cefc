import Foundation
import KilnTestSupport
import Testing

/// The README's demo, end to end: recipes/digits.yaml trains a real classifier in the sandbox.
@Suite("The digits demo pipeline", .serialized)
struct DigitsDemoTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let sklearnInstalled = FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/sklearn")

    /// A workspace holding a copy of the repository's recipes/.
    func workspace() throws -> ScratchDirectory {
        let scratch = ScratchDirectory("kiln-digits")
        let copy = ChildProcess.run("/bin/cp", ["-r", Self.repository + "/recipes", scratch.path + "/recipes"])
        try #require(copy.status == 0, "\(copy)")
        return scratch
    }

    func run(_ arguments: [String], in scratch: ScratchDirectory) -> ChildProcess.Output {
        ChildProcess.kiln(["run", "digits"] + arguments, currentDirectory: scratch.path)
    }

    func digest(_ path: String, in scratch: ScratchDirectory) -> String {
        ChildProcess.kiln(["hash", path], currentDirectory: scratch.path).stdout.split(separator: " ").first.map(String.init) ?? ""
    }

    @Test(.enabled(if: sklearnInstalled, "needs Debian's python3-sklearn (scripts/install-dependencies installs it)"))
    func trainsCachesRetrainsAndReproduces() throws {
        let scratch = try workspace()

        let first = run([], in: scratch)
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout.contains("4 ran, 0 cached"), "\(first)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch("metrics.json")))) as? [String: Any])
        #expect((metrics["accuracy"] as? Double ?? 0) >= 0.9, "\(metrics)")
        for file in ["model.pkl", "metrics.json", "MODEL_CARD.md"] {
            #expect(FileManager.default.fileExists(atPath: scratch("release/" + file)), "release/\(file)")
        }
        let release = digest("release", in: scratch)
        #expect(release.hasPrefix("sha256:"))

        // Nothing changed: all four restored from the cache.
        let second = run([], in: scratch)
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout.contains("0 ran, 4 cached"), "\(second)")

        // A hyperparameter: prepare stays cached, the rest reruns.
        let retrain = run(["-p", "C=10"], in: scratch)
        #expect(retrain.status == 0, "\(retrain)")
        #expect(retrain.stdout.contains("3 ran, 1 cached"), "\(retrain)")
        #expect(digest("release", in: scratch) != release)

        // The same inputs give the same bytes: without the cache, everything reruns to the same release.
        for path in ["cache", "data", "model.pkl", "metrics.json", "release"] {
            try? FileManager.default.removeItem(atPath: scratch(path))
        }
        let fresh = run([], in: scratch)
        #expect(fresh.status == 0, "\(fresh)")
        #expect(fresh.stdout.contains("4 ran, 0 cached"), "\(fresh)")
        #expect(digest("release", in: scratch) == release)
    }
}

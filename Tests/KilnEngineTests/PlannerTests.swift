import Foundation
import KilnEngine
import KilnRecipe
import KilnStore
import KilnTestSupport
import Testing

@Suite struct PlannerTests {
    static let base = """
        kiln: 1
        params: {seed: 1, C: 1.0}
        env: {A: x}
        stages:
          prep:
            run: cat in.txt > out.txt; echo ${params.seed}
            inputs: [in.txt, src/]
            outputs: [out.txt]
          other:
            run: echo ${params.C} > o
            outputs: [o]
        """

    func key(_ yaml: String = base, files: [String: String] = [:], overrides: [(name: String, value: String)] = [],
             host: String = "h", upstream: [String: UpstreamOutput] = [:]) throws -> Digest {
        let dir = ScratchDirectory("planner")
        var all = ["in.txt": "hello", "src/a.py": "print(1)"]
        all.merge(files) { _, new in new }
        for (path, text) in all {
            try FileManager.default.createDirectory(atPath: dir((path as NSString).deletingLastPathComponent), withIntermediateDirectories: true)
            try text.write(toFile: dir(path), atomically: true, encoding: .utf8)
        }
        let recipe = try Recipe(parsing: Array(yaml.utf8), file: "recipes/t.yaml", overrides: overrides, fileExists: { _ in true })
        let planner = Planner(workspace: dir.path, statCache: StatCache(path: nil), hostFingerprint: Digest.of(Array(host.utf8)))
        return try planner.keyInputs(for: recipe.stage(named: "prep")!, in: recipe, upstream: upstream).key
    }

    @Test func sameInputsSameKey() throws {
        #expect(try key() == key())
    }

    @Test func everyFieldChangesTheKey() throws {
        let k = try key()
        #expect(try key(files: ["in.txt": "changed"]) != k, "input file")
        #expect(try key(files: ["src/b.py": "new"]) != k, "file added to an input folder")
        #expect(try key(Self.base.replacingOccurrences(of: "> out.txt", with: ">out.txt")) != k, "argv")
        #expect(try key(Self.base.replacingOccurrences(of: "{A: x}", with: "{A: y}")) != k, "env")
        #expect(try key(overrides: [("seed", "2")]) != k, "used param")
        #expect(try key(host: "other") != k, "host fingerprint")
        #expect(try key(Self.base.replacingOccurrences(of: "outputs: [out.txt]", with: "outputs: [out.txt, more.txt]")) != k, "outputs")
        #expect(try key(Self.base.replacingOccurrences(of: "outputs: [out.txt]", with: "outputs: [out.txt]\n    cpus: 2")) != k, "cpus")
        #expect(try key(upstream: ["in.txt": UpstreamOutput(archive: Digest.of([1]), kind: "file")]) != k, "upstream output digest")
    }

    @Test func limitsAndUnusedParamsStayOut() throws {
        let k = try key()
        #expect(try key(overrides: [("C", "10")]) == k, "a param the stage does not use")
        #expect(try key(Self.base.replacingOccurrences(of: "outputs: [out.txt]", with: "outputs: [out.txt]\n    timeout: 5m\n    memory: 1G")) == k)
    }

    @Test func globExpandsToItsMatches() throws {
        let yaml = Self.base.replacingOccurrences(of: "inputs: [in.txt, src/]", with: "inputs: [\"src/*.py\"]")
        let k = try key(yaml)
        #expect(try key(yaml, files: ["src/b.py": "x"]) != k, "a new match")
        #expect(try key(yaml, files: ["src/b.txt": "x"]) == k, "a file the glob does not match")
    }

    @Test func hostFingerprintFollowsTheFilesItReads() throws {
        let dir = ScratchDirectory("host")
        try "a".write(toFile: dir("status"), atomically: true, encoding: .utf8)
        let first = HostFingerprint.compute(files: [dir("status"), dir("missing")])
        #expect(HostFingerprint.compute(files: [dir("status"), dir("missing")]) == first)
        try "b".write(toFile: dir("status"), atomically: true, encoding: .utf8)
        #expect(HostFingerprint.compute(files: [dir("status"), dir("missing")]) != first)
    }

    @Test func canonicalJSONIsSortedWithoutSpaces() {
        let json = CanonicalJSON.object(["b": .string("1"), "a": .array([.string("x\"y"), .string("\n")])])
        #expect(String(decoding: json.bytes, as: UTF8.self) == #"{"a":["x\"y","\n"],"b":"1"}"#)
    }

    @Test func missingInputIsAClearError() throws {
        let dir = ScratchDirectory("planner")
        let recipe = try Recipe(parsing: Array(Self.base.utf8), file: "recipes/t.yaml", fileExists: { _ in true })
        let planner = Planner(workspace: dir.path, statCache: StatCache(path: nil), hostFingerprint: Digest.of([0]))
        #expect(throws: EngineError.self) { try planner.keyInputs(for: recipe.stage(named: "prep")!, in: recipe, upstream: [:]) }
    }
}

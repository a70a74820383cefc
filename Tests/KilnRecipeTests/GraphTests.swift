import Testing
@testable import KilnRecipe

@Suite struct GraphTests {
    @Test func edgesFromFilesFoldersAndGlobs() throws {
        let recipe = try load("""
            kiln: 1
            stages:
              fetch: {run: true, outputs: [raw/]}
              split: {run: true, inputs: [raw/images.tar], outputs: [data/train.csv, data/test.csv]}
              train: {run: true, inputs: [data/], outputs: [model.pkl]}
              test: {run: true, inputs: ["data/*.csv", model.pkl], outputs: [out/metrics.json]}
              report: {run: true, inputs: ["**/metrics.json"], outputs: [report.md]}
              lonely: {run: true, inputs: [README.md], outputs: [x]}
            """, existing: ["README.md"])
        #expect(recipe.graph.dependencies == [[], [0], [1], [1, 2], [3], []])
        #expect(recipe.graph.dependents[1] == [2, 3])
        #expect(recipe.graph.topologicalOrder() == [0, 1, 2, 3, 4, 5])
    }

    @Test func stableOrderPrefersDeclarationOrder() throws {
        let recipe = try load("""
            kiln: 1
            stages:
              late: {run: true, inputs: [b.txt], outputs: [c.txt]}
              early: {run: true, outputs: [a.txt]}
              middle: {run: true, inputs: [a.txt], outputs: [b.txt]}
              free: {run: true}
            """)
        #expect(recipe.graph.topologicalOrder() == [1, 2, 0, 3])
        #expect(recipe.graph.closure(of: [0]) == [1, 2, 0])
        #expect(recipe.graph.closure(of: [3]) == [3])
    }

    @Test func selectingByNameAndVariant() throws {
        let recipe = try load("""
            kiln: 1
            stages:
              prepare: {run: true, outputs: [data/]}
              train: {run: true, matrix: {C: [1, 2]}, inputs: [data/], outputs: [model.pkl]}
              other: {run: true}
            """)
        #expect(try recipe.select(["train"]).map(\.name) == ["prepare", "train@C=1", "train@C=2"])
        #expect(try recipe.select(["train@C=2"]).map(\.name) == ["prepare", "train@C=2"])
        #expect(try recipe.select([]).map(\.name) == ["prepare", "train@C=1", "train@C=2", "other"])
        #expect(throws: StageSelectionError.self) { try recipe.select(["trian"]) }
        do {
            _ = try recipe.select(["trian"])
        } catch {
            #expect(error.description == "recipe 'test' has no stage 'trian'; did you mean 'train'?")
        }
    }

    @Test func selfLoopAndTwoCycles() {
        let graph = StageGraph(dependencies: [[1], [0], [2], [4], [3], []])
        #expect(graph.cycles() == [[0, 1, 0], [2, 2], [3, 4, 3]])
        #expect(graph.topologicalOrder() == nil)
    }

    @Test func longChainsNeitherOverflowNorCrawl() {
        let n = 20_000
        let graph = StageGraph(dependencies: (0..<n).map { $0 == 0 ? [] : [$0 - 1] })
        #expect(graph.cycles().isEmpty)
        #expect(graph.topologicalOrder() == Array(0..<n))
        #expect(graph.closure(of: [n - 1]).count == n)
    }

    @Test(arguments: [
        ("*.csv", "a.csv", true), ("*.csv", "d/a.csv", false), ("**/*.csv", "d/e/a.csv", true), ("**/a.csv", "a.csv", true),
        ("d/**", "d/x/y", true), ("data/?.txt", "data/a.txt", true), ("data/?.txt", "data/ab.txt", false),
        ("[a-c]x", "bx", true), ("[!a-c]x", "bx", false), ("train@*/model.pkl", "train@C=1/model.pkl", true),
        (String(repeating: "*a", count: 30), String(repeating: "a", count: 200) + "b", false),
    ])
    func globs(pattern: String, path: String, matches: Bool) {
        #expect(Glob.matches(pattern: pattern, path: path) == matches)
    }

    @Test func inputsMatchWorkspacePaths() throws {
        let recipe = try load("kiln: 1\nstages:\n  a: {run: true, inputs: [\"src/**/*.py\", data/, model.pkl]}\n",
                              existing: ["data/", "model.pkl"])
        let inputs = recipe.stages[0].inputs
        #expect(inputs[0].matches("src/pkg/a.py") && inputs[0].matches("src/a.py") && !inputs[0].matches("src/a.pyc"))
        #expect(inputs[1].matches("data/x/y.csv") && inputs[1].matches("data") && !inputs[1].matches("database"))
        #expect(inputs[2].matches("model.pkl") && !inputs[2].matches("model.pkl/x"))
    }

    @Test(arguments: [("outputs", "ouputs", 1), ("kitten", "sitting", 3), ("imgae", "image", 1), ("ab", "ba", 1), ("", "abc", 3), ("Cpus", "cpus", 0)])
    func editDistance(a: String, b: String, distance: Int) {
        #expect(Suggestion.distance(a, b) == distance)
    }

    @Test func suggestions() {
        #expect(Suggestion.closest(to: "imgae", among: RawRecipe.topKeys) == "image")
        #expect(Suggestion.closest(to: "x", among: RawRecipe.topKeys) == nil)
        #expect(Suggestion.closest(to: "timout", among: RawRecipe.stageKeys) == "timeout")
    }
}

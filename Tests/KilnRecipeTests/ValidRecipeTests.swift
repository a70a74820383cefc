import Testing
@testable import KilnRecipe
import KilnStore

@Suite struct ValidRecipeTests {
    @Test func designExampleLoads() throws {
        let recipe = try load(designExample, existing: designScripts)
        #expect(recipe.version == 1)
        #expect(recipe.name == "digits")
        #expect(recipe.image == .host)
        #expect(recipe.params.map(\.name) == ["seed", "C"])
        #expect(recipe.params.map(\.value) == [.int(0), .double(1.0)])
        #expect(recipe.stages.map(\.name) == ["prepare", "train", "evaluate"])

        let prepare = try #require(recipe.stage(named: "prepare"))
        #expect(prepare.argv == ["/bin/sh", "-c", "python3 recipes/digits/prepare.py --seed 0 --out data"])
        #expect(prepare.env == ["OPENBLAS_CORETYPE": "Haswell"])
        #expect(prepare.outputs.map(\.description) == ["data/"])
        #expect(prepare.paramsUsed == ["seed"])
        #expect(prepare.cpus == 1)
        #expect(prepare.network == .none)
        #expect(prepare.location == SourceLocation(file: "recipes/test.yaml", line: 7, column: 3))

        let train = try #require(recipe.stage(named: "train"))
        #expect(train.argv.last == "python3 recipes/digits/train.py --C 1.0")
        #expect(train.paramsUsed == ["C"])
        #expect(train.cpus == 2)
        #expect(train.memoryBytes == 2 << 30)
        #expect(train.timeoutSeconds == 600)
        #expect(train.inputs.map(\.description) == ["recipes/digits/train.py", "data/"])

        let evaluate = try #require(recipe.stage(named: "evaluate"))
        #expect(evaluate.paramsUsed == [])
        #expect(evaluate.metrics?.path == "metrics.json")
        #expect(evaluate.gates.map(\.text) == ["accuracy >= 0.9"])

        #expect(recipe.graph.dependencies == [[], [0], [0, 1]])
        #expect(recipe.graph.topologicalOrder() == [0, 1, 2])
    }

    @Test func nameDefaultsToTheFileName() throws {
        let recipe = try load("kiln: 1\nstages:\n  a: {run: true}\n", file: "recipes/my-pipeline.yml")
        #expect(recipe.name == "my-pipeline")
    }

    @Test func argvRunAndStageEnvOverride() throws {
        let recipe = try load("""
            kiln: 1
            env: {A: "1", B: 2}
            params: {n: 3}
            stages:
              s:
                run: [python3, -c, "print(${params.n})"]
                env:
                  B: x-${params.n}
                  C: ~
                network: host
            """)
        let s = recipe.stages[0]
        #expect(s.argv == ["python3", "-c", "print(3)"])
        #expect(s.env == ["A": "1", "B": "x-3", "C": ""])
        #expect(s.network == .host)
        #expect(s.paramsUsed == ["n"])
    }

    @Test func pinnedImage() throws {
        let hex = String(repeating: "ab", count: 32)
        let recipe = try load("kiln: 1\nimage: python:3.11@sha256:\(hex)\nstages: {a: {run: true}}\n")
        #expect(recipe.image.description == "python:3.11@sha256:\(hex)")
        guard case .pinned(let name, let digest) = recipe.image else { Issue.record("not pinned"); return }
        #expect(name == "python:3.11")
        #expect(digest.description == "sha256:" + hex)
    }

    @Test func shellVariablesPassThroughAndDollarEscapes() throws {
        let recipe = try load("kiln: 1\nstages:\n  a: {run: 'echo ${HOME} $PATH $${params.x}'}\n")
        #expect(recipe.stages[0].argv[2] == "echo ${HOME} $PATH ${params.x}")
    }

    @Test func anchorsAndMergeKeys() throws {
        let recipe = try load("""
            kiln: 1
            stages:
              a: &base
                run: echo a
                cpus: 3
                outputs: [a.txt]
              b:
                <<: *base
                run: echo b
                outputs: [b.txt]
            """)
        #expect(recipe.stages.map(\.cpus) == [3, 3])
        #expect(recipe.stages[1].argv.last == "echo b")
        #expect(recipe.stages[1].outputs.map(\.path) == ["b.txt"])
    }

    @Test(arguments: [
        ("./data//raw/", "data/raw/"), ("model.pkl", "model.pkl"), ("a/./b", "a/b"), ("logs/*.txt", "logs/*.txt"), ("a/.../b", "a/.../b"), (".hidden/", ".hidden/"), ("a/b/.", "a/b"),
    ])
    func pathsAreNormalised(written: String, normalised: String) throws {
        let recipe = try load("kiln: 1\nstages:\n  a: {run: true, inputs: ['\(written)']}\n", existing: [normalised])
        #expect(recipe.stages[0].inputs.map(\.description) == [normalised])
    }
}

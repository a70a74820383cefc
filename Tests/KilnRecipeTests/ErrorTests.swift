import Testing
@testable import KilnRecipe

/// Every kind of recipe error, each at its exact line and column, with its message and hint.
@Suite struct ErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var yaml: String
        var expected: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "unknown top-level key", yaml: "kiln: 1\nstagse: {}\n", expected: ["missingKey@1:1", "unknownKey@2:1"]),
        Case(name: "unknown stage key", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    ouputs: [x]\n", expected: ["unknownKey@5:5"]),
        Case(name: "missing kiln", yaml: "stages: {a: {run: true}}\n", expected: ["missingKey@1:1"]),
        Case(name: "unsupported version", yaml: "kiln: 2\nstages: {a: {run: true}}\n", expected: ["unsupportedVersion@1:7"]),
        Case(name: "version as string", yaml: "kiln: \"1\"\nstages: {a: {run: true}}\n", expected: ["wrongType@1:7"]),
        Case(name: "missing run", yaml: "kiln: 1\nstages:\n  a:\n    outputs: [x]\n", expected: ["missingKey@3:3"]),
        Case(name: "inputs is a mapping", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    inputs: {x: 1}\n", expected: ["wrongType@5:13"]),
        Case(name: "cpus not a number", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    cpus: two\n", expected: ["wrongType@5:11"]),
        Case(name: "cpus zero", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    cpus: 0\n", expected: ["wrongType@5:11"]),
        Case(name: "memory not a size", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    memory: lots\n", expected: ["invalidValue@5:13"]),
        Case(name: "timeout not a duration", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    timeout: soon\n", expected: ["invalidValue@5:14"]),
        Case(name: "network unknown", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    network: hots\n", expected: ["invalidValue@5:14"]),
        Case(name: "duplicate key", yaml: "kiln: 1\nstages:\n  a: {run: true}\n  a: {run: false}\n", expected: ["duplicateKey@4:3"]),
        Case(name: "param is a list", yaml: "kiln: 1\nparams:\n  lr: [1, 2]\nstages: {a: {run: true}}\n", expected: ["wrongType@3:7"]),
        Case(name: "unpinned image", yaml: "kiln: 1\nimage: python:3.11\nstages: {a: {run: true}}\n", expected: ["invalidValue@2:8"]),
        Case(name: "bad image digest", yaml: "kiln: 1\nimage: py@sha256:abc\nstages: {a: {run: true}}\n", expected: ["invalidValue@2:8"]),
        Case(name: "absolute output", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: [/etc/passwd]\n",
             expected: ["pathOutsideWorkspace@5:15"]),
        Case(name: "parent input", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    inputs: [ok.txt, ../secret]\n",
             expected: ["pathOutsideWorkspace@5:22"]),
        Case(name: "glob output", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: ['*.pkl']\n", expected: ["invalidPath@5:15"]),
        Case(name: "undefined param", yaml: "kiln: 1\nparams: {seed: 1}\nstages:\n  a:\n    run: echo ${params.sed} x\n",
             expected: ["undefinedVariable@5:15"]),
        Case(name: "undefined param in quotes", yaml: "kiln: 1\nstages:\n  a:\n    run: \"go ${params.x}\"\n",
             expected: ["undefinedVariable@4:14"]),
        Case(name: "undefined matrix variable", yaml: "kiln: 1\nstages:\n  a:\n    run: echo ${matrix.C}\n",
             expected: ["undefinedVariable@4:15"]),
        Case(name: "misspelt namespace", yaml: "kiln: 1\nparams: {x: 1}\nstages:\n  a:\n    run: echo ${param.x}\n",
             expected: ["undefinedVariable@5:15"]),
        Case(name: "missing input", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    inputs: [here.txt, gone.txt]\n",
             expected: ["missingInput@5:24"]),
        Case(name: "two stages write one output",
             yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: [m.pkl]\n  b:\n    run: true\n    outputs: [m.pkl]\n",
             expected: ["outputConflict@8:15"]),
        Case(name: "output inside another stage's folder",
             yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: [data/]\n  b:\n    run: true\n    outputs: [data/extra.csv]\n",
             expected: ["outputConflict@8:15"]),
        Case(name: "gate does not parse",
             yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: [m.json]\n    metrics: m.json\n    gates: [\"accuracy >> 0.9\"]\n",
             expected: ["badGate@7:24"]),
        Case(name: "gates without metrics", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    gates: [\"a > 1\"]\n", expected: ["missingKey@3:3"]),
        Case(name: "metrics not an output", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    metrics: m.json\n", expected: ["invalidPath@5:14"]),
        Case(name: "reads its own output", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    inputs: [d/x]\n    outputs: [d/]\n",
             expected: ["cycle@5:14"]),
        Case(name: "bad stage name", yaml: "kiln: 1\nstages:\n  a@b: {run: true}\n", expected: ["invalidValue@3:3"]),
        Case(name: "empty stages", yaml: "kiln: 1\nstages: {}\n", expected: ["missingKey@2:9"]),
        Case(name: "recipe is a list", yaml: "- kiln: 1\n", expected: ["wrongType@1:1"]),
        Case(name: "empty file", yaml: "", expected: ["missingKey@1:1"]),
        Case(name: "two documents", yaml: "kiln: 1\nstages: {a: {run: true}}\n---\nkiln: 1\n", expected: ["syntax@3:1"]),
        Case(name: "variant outside a matrix", yaml: "kiln: 1\nstages:\n  a:\n    run: echo ${variant}\n",
             expected: ["undefinedVariable@4:15"]),
        Case(name: "bad env name", yaml: "kiln: 1\nenv:\n  1X: a\nstages: {a: {run: true}}\n", expected: ["invalidValue@3:3"]),
        Case(name: "env value is a list", yaml: "kiln: 1\nenv:\n  X: [a]\nstages: {a: {run: true}}\n", expected: ["wrongType@3:6"]),
        Case(name: "uppercase image name", yaml: "kiln: 1\nimage: Py@sha256:\(String(repeating: "0", count: 64))\nstages: {a: {run: true}}\n",
             expected: ["invalidValue@2:8"]),
        Case(name: "empty argv", yaml: "kiln: 1\nstages:\n  a:\n    run: []\n", expected: ["invalidValue@4:10"]),
        Case(name: "blank command", yaml: "kiln: 1\nstages:\n  a:\n    run: '  '\n", expected: ["invalidValue@4:10"]),
        Case(name: "null command", yaml: "kiln: 1\nstages:\n  a:\n    run:\n", expected: ["wrongType@4:9"]),
        Case(name: "bad recipe name", yaml: "kiln: 1\nname: my recipe\nstages: {a: {run: true}}\n", expected: ["invalidValue@2:7"]),
        Case(name: "param name", yaml: "kiln: 1\nparams: {learning-rate: 1}\nstages: {a: {run: true}}\n", expected: ["invalidValue@2:10"]),
        Case(name: "metrics is a folder",
             yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: [m/]\n    metrics: m/\n", expected: ["invalidPath@6:14"]),
        Case(name: "same output twice in a stage", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    outputs: [d/, d/x]\n",
             expected: ["outputConflict@5:19"]),
        Case(name: "whole workspace", yaml: "kiln: 1\nstages:\n  a:\n    run: true\n    inputs: [./]\n", expected: ["invalidPath@5:14"]),
        Case(name: "non-scalar key", yaml: "kiln: 1\n[a]: 1\nstages: {a: {run: true}}\n", expected: ["wrongType@2:1"]),
        Case(name: "unclosed flow", yaml: "kiln: 1\nstages: {a: {run: true}\n", expected: ["syntax@3:1"]),
    ]

    @Test(arguments: cases)
    func errorAtItsPosition(_ c: Case) {
        let found = errors(c.yaml, existing: ["here.txt", "ok.txt"])
        #expect(summary(found) == c.expected, "\(found)")
        for error in found {
            #expect(error.location.file == "recipes/test.yaml")
            #expect(!error.message.isEmpty)
        }
    }

    @Test func allErrorsAreReportedInFileOrder() {
        let found = errors("""
            kiln: 3
            params: {lr: 0.1}
            stages:
              train:
                run: python3 train.py --lr ${params.lrr}
                inputs: [train.py]
                outputs: [/tmp/model]
                cpu: 2
            """)
        #expect(summary(found) == ["unsupportedVersion@1:7", "undefinedVariable@5:32", "missingInput@6:14",
                                   "pathOutsideWorkspace@7:15", "unknownKey@8:5"])
        #expect(found[1].hint == "did you mean 'lr'?")
        #expect(found[4].hint == "did you mean 'cpus'?")
        #expect(found[4].description == "recipes/test.yaml:8:5: error: unknown key 'cpu' in stage 'train'\n  hint: did you mean 'cpus'?")
    }

    @Test func unknownKeyHintListsTheKeysWhenNothingIsClose() {
        let found = errors("kiln: 1\nzzzzzz: 1\nstages: {a: {run: true}}\n")
        #expect(found.first?.hint == "expected one of: kiln, name, image, env, params, stages")
    }

    @Test func missingInputSuggestsANearOutput() {
        let found = errors("kiln: 1\nstages:\n  a: {run: true, outputs: [model.pkl]}\n  b: {run: true, inputs: [modle.pkl]}\n")
        #expect(summary(found) == ["missingInput@4:27"])
        #expect(found.first?.hint == "did you mean 'model.pkl', an output of stage 'a'?")
    }

    @Test func cycleIsPrinted() {
        let found = errors("""
            kiln: 1
            stages:
              a: {run: true, inputs: [c.txt], outputs: [a.txt]}
              b: {run: true, inputs: [a.txt], outputs: [b.txt]}
              c: {run: true, inputs: [b.txt], outputs: [c.txt]}
              d: {run: true, inputs: [c.txt], outputs: [d.txt]}
            """)
        #expect(summary(found) == ["cycle@3:3"])
        #expect(found.first?.message == "the stages depend on each other in a cycle: a → c → b → a")
    }

    @Test func overrideErrors() {
        let yaml = "kiln: 1\nparams:\n  seed: 0\n  C: 1.0\n  name: x\n  fast: false\nstages: {a: {run: true}}\n"
        #expect(summary(errors(yaml, overrides: [("sed", "1")])) == ["badOverride@1:1"])
        #expect(errors(yaml, overrides: [("sed", "1")]).first?.hint == "did you mean 'seed'?")
        #expect(summary(errors(yaml, overrides: [("seed", "1.5")])) == ["badOverride@3:3"])
        #expect(summary(errors(yaml, overrides: [("C", "big")])) == ["badOverride@4:3"])
        #expect(summary(errors(yaml, overrides: [("fast", "yes")])) == ["badOverride@6:3"])
        #expect(errors(yaml, overrides: [("seed", "7"), ("C", "10"), ("name", "1.5"), ("fast", "true")]).isEmpty)
    }
}

@Suite struct PositionTests {
    @Test func columnsCountCharactersNotBytes() {
        let found = errors("kiln: 1\nstages:\n  a:\n    run: echo héllo→ ${params.x}\n")
        #expect(summary(found) == ["undefinedVariable@4:22"])
    }

    @Test func windowsLineEndings() {
        #expect(summary(errors("kiln: 1\r\nstages:\r\n  a:\r\n    run: true\r\n    ouputs: [x]\r\n")) == ["unknownKey@5:5"])
    }

    @Test func multiLineScalarsPointAtTheScalar() {
        let found = errors("kiln: 1\nstages:\n  a:\n    run: |\n      echo one\n      echo ${params.nope}\n")
        #expect(summary(found) == ["undefinedVariable@4:10"])
    }

    @Test func escapedQuotedScalarsPointAtTheScalar() {
        #expect(summary(errors("kiln: 1\nstages:\n  a:\n    run: \"\\techo ${params.nope}\"\n")) == ["undefinedVariable@4:10"])
    }
}

@Suite struct ScaleTests {
    /// Ten thousand stages in a chain load, validate and order (the engine's no-op run needs this fast).
    @Test func tenThousandStageChain() throws {
        var yaml = "kiln: 1\nstages:\n  s0: {run: true, outputs: [o0]}\n"
        for i in 1..<10_000 { yaml += "  s\(i): {run: true, inputs: [o\(i - 1)], outputs: [o\(i)]}\n" }
        let recipe = try load(yaml)
        #expect(recipe.stages.count == 10_000)
        #expect(recipe.graph.topologicalOrder() == Array(0..<10_000))
        #expect(try recipe.select(["s9999"]).count == 10_000)
    }
}

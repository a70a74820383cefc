import Testing
@testable import KilnRecipe

@Suite struct MatrixTests {
    static let recipe = """
        kiln: 1
        params: {seed: 1, unused: x}
        stages:
          prepare:
            run: make data
            outputs: [data/]
          train:
            matrix: {C: [0.1, 1, 10], kernel: [rbf, linear]}
            run: python3 train.py --C ${matrix.C} --kernel ${matrix.kernel} --seed ${params.seed} --out ${variant}/model.pkl
            inputs: [data/]
            outputs: [model.pkl, "scores-${matrix.C}-${matrix.kernel}.json"]
            metrics: metrics.json
          report:
            run: cat train@*/model.pkl
            inputs: ["train@*/model.pkl"]
            outputs: [report.txt]
        """

    @Test func expandsIntoVariantsInMatrixOrder() throws {
        let recipe = try load(Self.recipe.replacingMetrics())
        #expect(recipe.stages.map(\.name) == [
            "prepare",
            "train@C=0.1,kernel=rbf", "train@C=0.1,kernel=linear", "train@C=1,kernel=rbf",
            "train@C=1,kernel=linear", "train@C=10,kernel=rbf", "train@C=10,kernel=linear",
            "report",
        ])
        let variant = recipe.stages[1]
        #expect(variant.baseName == "train")
        #expect(variant.matrix == [MatrixBinding(name: "C", value: .double(0.1)), MatrixBinding(name: "kernel", value: .string("rbf"))])
        #expect(variant.argv[2] == "python3 train.py --C 0.1 --kernel rbf --seed 1 --out train@C=0.1,kernel=rbf/model.pkl")
        #expect(variant.paramsUsed == ["seed"])
    }

    @Test func outputsGoUnderTheVariantFolderUnlessPlacedByMatrixVariables() throws {
        let recipe = try load(Self.recipe.replacingMetrics())
        let variant = recipe.stages[3]
        #expect(variant.name == "train@C=1,kernel=rbf")
        #expect(variant.outputs.map(\.path) == ["train@C=1,kernel=rbf/model.pkl", "scores-1-rbf.json"])
        #expect(Stage.variantDirectory(variant.name) == "train@C=1,kernel=rbf/")
    }

    @Test func downstreamGlobDependsOnEveryVariant() throws {
        let recipe = try load(Self.recipe.replacingMetrics())
        #expect(recipe.graph.dependencies[7] == [1, 2, 3, 4, 5, 6])
        #expect(recipe.graph.dependencies[1] == [0])
    }

    @Test func metricsOfAVariantAreUnderItsFolderToo() throws {
        let recipe = try load(Self.recipe.replacingOccurrences(of: "outputs: [model.pkl,", with: "outputs: [model.pkl, metrics.json,"))
        #expect(recipe.stages[1].metrics?.path == "train@C=0.1,kernel=rbf/metrics.json")
    }

    @Test func invalidMatrices() {
        #expect(summary(errors("kiln: 1\nstages:\n  a:\n    run: true\n    matrix: {C: []}\n")) == ["wrongType@5:17"])
        #expect(summary(errors("kiln: 1\nstages:\n  a:\n    run: true\n    matrix: {C: [a/b]}\n")) == ["invalidValue@5:18"])
        #expect(summary(errors("kiln: 1\nstages:\n  a:\n    run: true\n    matrix: {C: [1, 1]}\n")) == ["duplicateKey@5:21"])
        #expect(summary(errors("kiln: 1\nstages:\n  a:\n    run: true\n    matrix: [1, 2]\n")) == ["wrongType@5:13"])
    }

    @Test func undefinedMatrixVariableIsReportedOnce() {
        let found = errors("kiln: 1\nstages:\n  a:\n    matrix: {C: [1, 2, 3]}\n    run: echo ${matrix.D}\n")
        #expect(summary(found) == ["undefinedVariable@5:15"])
        #expect(found.first?.hint == "expected one of: C")
    }
}

extension String {
    /// The matrix recipe's metrics line needs metrics.json among the outputs; most tests drop it.
    func replacingMetrics() -> String { replacingOccurrences(of: "    metrics: metrics.json\n", with: "") }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

@Suite struct MatrixDependencyTests {
    @Test func readingAVariantOutputByItsPlainNameExplainsWhereItIs() {
        let found = errors("""
            kiln: 1
            stages:
              train: {run: true, matrix: {C: [1, 2]}, outputs: [model.pkl]}
              test: {run: true, inputs: [model.pkl]}
            """)
        #expect(summary(found) == ["missingInput@4:30"])
        #expect(found.first?.hint == "matrix stage 'train' writes it in each variant's folder: read 'train@C=1/model.pkl', or all of them with 'train@*/model.pkl'")
    }

    @Test func gateThresholdsFromParamsStayOutOfTheKey() throws {
        let recipe = try load("""
            kiln: 1
            params: {min_accuracy: 0.9}
            stages:
              evaluate:
                run: true
                outputs: [m.json]
                metrics: m.json
                gates: ["accuracy >= ${params.min_accuracy}"]
            """, overrides: [("min_accuracy", "0.95")])
        #expect(recipe.stages[0].gates.map(\.text) == ["accuracy >= 0.95"])
        #expect(recipe.stages[0].paramsUsed == [])
    }
}

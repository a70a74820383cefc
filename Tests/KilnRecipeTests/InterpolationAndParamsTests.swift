import Testing
@testable import KilnRecipe

@Suite struct InterpolationAndParamsTests {
    static let yaml = """
        kiln: 1
        params: {seed: 0, C: 1.0, kernel: rbf, fast: false, data: raw}
        stages:
          prepare:
            run: [prep, --seed, "${params.seed}", "${params.fast}"]
            inputs: ["${params.data}/"]
            outputs: [data/]
          train:
            run: train --C ${params.C} --kernel ${params.kernel}
            inputs: [data/]
            outputs: [model.pkl]
        """

    @Test func eachStageRecordsOnlyTheParamsItUses() throws {
        let recipe = try load(Self.yaml, existing: ["raw/"])
        #expect(recipe.stages[0].paramsUsed == ["data", "fast", "seed"])
        #expect(recipe.stages[1].paramsUsed == ["C", "kernel"])
        #expect(recipe.stages[0].inputs.map(\.description) == ["raw/"])
        #expect(recipe.paramValues(for: recipe.stages[1]) == ["C": .double(1.0), "kernel": .string("rbf")])
    }

    @Test(arguments: [
        ("C", "10", ParamValue.double(10), "train --C 10.0 --kernel rbf"),
        ("C", "10.0", .double(10), "train --C 10.0 --kernel rbf"),
        ("C", "0.001", .double(0.001), "train --C 0.001 --kernel rbf"),
        ("C", "1e-5", .double(1e-5), "train --C 1e-05 --kernel rbf"),
        ("kernel", "10", .string("10"), "train --C 1.0 --kernel 10"),
    ])
    func overridesAreTypedLikeTheDefault(name: String, value: String, typed: ParamValue, argv: String) throws {
        let recipe = try load(Self.yaml, overrides: [(name, value)], existing: ["raw/"])
        #expect(recipe.params.first { $0.name == name }?.value == typed)
        #expect(recipe.stages[1].argv[2] == argv)
        #expect(recipe.params.first { $0.name == name }?.defaultValue != typed)
    }

    @Test(arguments: [("seed", "7", ParamValue.int(7)), ("seed", "0x10", .int(16)), ("fast", "true", .bool(true)), ("fast", "False", .bool(false))])
    func intAndBoolOverrides(name: String, value: String, typed: ParamValue) throws {
        let recipe = try load(Self.yaml, overrides: [(name, value)], existing: ["raw/"])
        #expect(recipe.params.first { $0.name == name }?.value == typed)
    }

    @Test(arguments: [("seed", "1.5"), ("seed", "ten"), ("C", "fast"), ("C", "inf"), ("fast", "1"), ("fast", "yes")])
    func mistypedOverridesAreErrors(name: String, value: String) {
        let found = errors(Self.yaml, overrides: [(name, value)], existing: ["raw/"])
        #expect(found.map(\.code) == [.badOverride])
        #expect(found.first?.location.line == 2)
    }

    @Test func overrideArguments() {
        #expect(ParamOverride.parse("C=10")! == ("C", "10"))
        #expect(ParamOverride.parse("query=a=b")! == ("query", "a=b"))
        #expect(ParamOverride.parse("empty=")! == ("empty", ""))
        #expect(ParamOverride.parse("=1") == nil)
        #expect(ParamOverride.parse("C") == nil)
    }

    @Test func templatePieces() {
        let t = Template("a ${params.x} $${params.y} ${HOME} ${ matrix.C }")
        #expect(t.references.map { "\($0.namespace).\($0.name)@\($0.offset)" } == ["params.x@2", "matrix.C@35"])
        #expect(t.pieces.first == .literal("a "))
    }

    @Test(arguments: [
        ("0", ScalarValue.int(0)), ("-3", .int(-3)), ("0x1F", .int(31)), ("0o17", .int(15)), ("1.5", .double(1.5)),
        ("1e3", .double(1000)), (".5", .double(0.5)), ("true", .bool(true)), ("FALSE", .bool(false)), ("~", .null),
        ("yes", .string("yes")), ("inf", .string("inf")), ("1.2.3", .string("1.2.3")), ("0x", .string("0x")), ("nan", .string("nan")),
    ])
    func coreSchemaTyping(text: String, value: ScalarValue) {
        #expect(ScalarValue.resolve(plain: text) == value)
    }
}

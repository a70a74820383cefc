// The module's entry point. Loading runs in stages, each in its own file:
//   YAMLParser (libyaml events → YAMLNode, with marks and limits) → RawRecipe (keys and types)
//   → StageBuilder (params, matrix variants, ${…}, paths, gates) → GraphBuilder (cross-stage checks, DAG).
// Every step records problems in one Diagnostics and goes on, so a recipe's errors come out together.
extension Recipe {
    /// Parses, validates and expands a recipe, reporting every problem found (each with
    /// `file:line:column`, what was expected and a hint) rather than only the first.
    ///
    /// - Parameters:
    ///   - text: the file's bytes (UTF-8).
    ///   - file: the path as the user should see it in messages (`recipes/digits.yaml`).
    ///   - overrides: `-p NAME=VALUE` pairs, in order; each value is typed like the param's default.
    ///   - fileExists: whether a workspace path exists (directories are passed with a trailing `/`);
    ///     asked only for inputs no stage produces. Globs are not checked here.
    public init(
        parsing text: [UInt8], file: String, overrides: [(name: String, value: String)] = [],
        fileExists: (String) -> Bool
    ) throws(RecipeErrors) {
        var d = Diagnostics(file: file)
        let parsed: YAMLNode?
        do {
            parsed = try YAMLParser.parse(text)
        } catch {
            throw RecipeErrors([RecipeError(error.code, error.message, at: d.location(error.mark), hint: error.hint)])
        }
        guard let root = parsed else {
            throw RecipeErrors([RecipeError(.missingKey, "the recipe is empty", at: SourceLocation(file: file, line: 1, column: 1),
                                            hint: "start with `kiln: 1` and declare `stages:`")])
        }

        let raw = RawRecipe(root, &d)
        let params = Self.params(raw.params, overrides: overrides, root: root, &d)
        let builder = StageBuilder(params: Dictionary(params.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }), recipeEnv: raw.env)
        var stages: [Stage] = []
        var marks: [Mark] = []
        for rawStage in raw.stages {
            guard stages.count <= Self.maxStages else {
                d.error(.tooComplex, "the recipe expands to more than \(Self.maxStages) stages", at: rawStage.mark,
                        hint: "split it into several recipes, or sweep fewer matrix values")
                break
            }
            for stage in builder.build(rawStage, &d) {
                stages.append(stage)
                marks.append(rawStage.mark)
            }
        }
        let graph = Self.graph(stages, marks: marks, fileExists: fileExists, &d)

        guard d.isEmpty else { throw RecipeErrors(Self.unique(d.errors)) }
        self.init(version: raw.version, name: raw.name ?? Self.defaultName(file), file: file, image: raw.image,
                  params: params, stages: stages, graph: graph)
        if var build = raw.imageBuild {
            if build.name.isEmpty { build.name = name.lowercased() }
            imageBuild = build
        }
    }

    /// Stages (variants included) one recipe may hold.
    static let maxStages = 100_000

    /// The file's name without its folder and `.yaml`/`.yml`.
    static func defaultName(_ file: String) -> String {
        var name = file.split(separator: "/").last.map(String.init) ?? file
        for suffix in [".yaml", ".yml"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
        return name
    }

    /// A matrix stage's variants repeat its errors: report each once.
    static func unique(_ errors: [RecipeError]) -> [RecipeError] {
        var seen = Set<RecipeError>()
        return errors.filter { seen.insert($0).inserted }
    }

    /// Declared params with `-p` overrides applied, each typed like its default.
    static func params(_ raw: [RawRecipe.RawParam], overrides: [(name: String, value: String)], root: YAMLNode,
                       _ d: inout Diagnostics) -> [Param] {
        var params = raw.map { Param(name: $0.name, value: $0.value, defaultValue: $0.value, location: d.location($0.mark)) }
        for (name, text) in overrides {
            guard let i = params.firstIndex(where: { $0.name == name }) else {
                d.error(.badOverride, "-p \(name)=\(text): the recipe declares no param '\(name)'", at: root.mark,
                        hint: Suggestion.hint(for: name, among: params.map(\.name), what: "params"))
                continue
            }
            let declared = Mark(line: params[i].location.line, column: params[i].location.column)
            if let value = Self.typed(text, like: params[i].defaultValue) {
                params[i].value = value
            } else {
                d.error(.badOverride, "-p \(name)=\(text): '\(text)' is not \(params[i].defaultValue.typeName), the type of the param's default",
                        at: declared, hint: "param '\(name)' is declared here as \(params[i].defaultValue)")
            }
        }
        return params
    }

    /// `text` as a value of the same type as `value`: an integer param takes integers, a number param
    /// any number (`10` becomes 10.0), a boolean `true`/`false`, a string anything.
    public static func typed(_ text: String, like value: ParamValue) -> ParamValue? {
        switch value {
        case .string: return .string(text)
        case .bool:
            switch ScalarValue.resolve(plain: text) {
            case .bool(let b): return .bool(b)
            default: return nil
            }
        case .int:
            if case .int(let v) = ScalarValue.resolve(plain: text) { return .int(v) }
            return nil
        case .double:
            switch ScalarValue.resolve(plain: text) {
            case .int(let v): return .double(Double(v))
            case .double(let v) where v.isFinite: return .double(v)
            default: return nil
            }
        }
    }
}

/// `-p NAME=VALUE` as the command line gives it.
public enum ParamOverride {
    /// Splits at the first `=` (so values may hold `=`); nil without one or without a name.
    public static func parse(_ text: String) -> (name: String, value: String)? {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return nil }
        return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    }
}

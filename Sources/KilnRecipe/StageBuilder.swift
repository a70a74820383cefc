/// Turns raw stages into `Stage`s: matrix expansion, `${…}` interpolation (recording the params each
/// stage uses), path normalisation, and the checks that need one stage at a time.
struct StageBuilder {
    let params: [String: Param]
    let recipeEnv: [(name: String, value: Diagnostics.Text)]

    /// The variants of a stage: one per combination of matrix values, the first variable varying slowest.
    static func variants(of stage: RawRecipe.RawStage) -> [[MatrixBinding]] {
        var combinations: [[MatrixBinding]] = [[]]
        for variable in stage.matrix {
            combinations = combinations.flatMap { prefix in
                variable.values.map { prefix + [MatrixBinding(name: variable.name, value: $0.value)] }
            }
        }
        return combinations
    }

    /// `train`, or `train@C=0.1,kernel=rbf` for a variant.
    static func variantName(_ base: String, _ bindings: [MatrixBinding]) -> String {
        bindings.isEmpty ? base : base + "@" + bindings.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    }

    func build(_ raw: RawRecipe.RawStage, _ d: inout Diagnostics) -> [Stage] {
        Self.variants(of: raw).map { build(raw, bindings: $0, &d) }
    }

    private func build(_ raw: RawRecipe.RawStage, bindings: [MatrixBinding], _ d: inout Diagnostics) -> Stage {
        let name = Self.variantName(raw.name, bindings)
        var used = Set<String>()
        var context = Context(params: params, bindings: bindings, variant: bindings.isEmpty ? nil : name,
                              matrixNames: raw.matrix.map(\.name))
        func expand(_ text: Diagnostics.Text, _ d: inout Diagnostics) -> (String, usesMatrix: Bool) {
            context.usedMatrix = false
            let value = context.interpolate(text, &used, &d)
            return (value, context.usedMatrix)
        }

        var argv: [String] = []
        switch raw.run {
        case .shell(let text)?: argv = ["/bin/sh", "-c", expand(text, &d).0]
        case .argv(let texts)?: argv = texts.map { expand($0, &d).0 }
        case nil: break
        }
        var env: [String: String] = [:]
        for entry in recipeEnv + raw.env { env[entry.name] = expand(entry.value, &d).0 }

        let location = d.location(raw.mark)
        func path(_ text: Diagnostics.Text, role: String, placeInVariant: Bool, _ d: inout Diagnostics) -> WorkspacePath? {
            var (value, usesMatrix) = expand(text, &d)
            if placeInVariant, !bindings.isEmpty, !usesMatrix, !value.hasPrefix("/") {
                value = Stage.variantDirectory(name) + value
            }
            do {
                return try WorkspacePath(parsing: value, location: d.location(text.mark))
            } catch {
                d.error(error.code, error.message(text.value, role: role), at: text.mark, hint: error.hint)
                return nil
            }
        }
        let inputs = raw.inputs.compactMap { path($0, role: "input", placeInVariant: false, &d) }
        var outputs: [WorkspacePath] = []
        for text in raw.outputs {
            guard let output = path(text, role: "output", placeInVariant: true, &d) else { continue }
            if output.isGlob {
                d.error(.invalidPath, "output '\(text.value)' is a glob; expected the path the stage creates", at: text.mark,
                        hint: "declare the file, or the folder holding the files (with a trailing /)")
            } else if let earlier = outputs.first(where: { $0.overlaps(output) }) {
                d.error(.outputConflict, "output '\(output)' overlaps '\(earlier)' of the same stage", at: text.mark,
                        hint: "declare the folder once, or the files inside it, not both")
            } else {
                outputs.append(output)
            }
        }
        var metrics: WorkspacePath?
        if let text = raw.metrics, let m = path(text, role: "metrics", placeInVariant: true, &d) {
            if m.isGlob || m.isDirectory {
                d.error(.invalidPath, "`metrics:` must name one JSON file, found '\(text.value)'", at: text.mark)
            } else if !outputs.contains(where: { m.isWithin($0) }) {
                d.error(.invalidPath, "metrics file '\(m)' is not one of the stage's outputs", at: text.mark,
                        hint: "add '\(m)' to `outputs:` so the stage creates it")
            } else {
                metrics = m
            }
        }
        var gates: [GateExpression] = []
        for text in raw.gates {
            // Thresholds may come from params (`accuracy >= ${params.min_accuracy}`); they are checked
            // after the stage runs, so they stay out of `paramsUsed` and a new threshold reruns nothing.
            var gateParams = Set<String>()
            let expanded = context.interpolate(text, &gateParams, &d)
            do {
                gates.append(try GateExpression(parsing: expanded))
            } catch {
                let offsetHolds = expanded == text.value
                d.error(.badGate, "gate '\(expanded)' does not parse: \(error.message)",
                        at: offsetHolds ? text.scalar.mark(ofScalarAt: error.offset, in: text.mark) : text.mark,
                        hint: "write comparisons of metric names and numbers joined by `and`, e.g. \"accuracy >= 0.9 and loss < 0.2\"")
            }
        }
        if !raw.gates.isEmpty, raw.metrics == nil {
            d.error(.missingKey, "stage '\(raw.name)' has gates but no `metrics:` file to check them against", at: raw.mark,
                    hint: "add `metrics: metrics.json` (a JSON file the stage writes and lists in `outputs:`)")
        }
        var stage = Stage(name: name, baseName: raw.name, matrix: bindings, argv: argv, env: env, inputs: inputs, outputs: outputs,
                          metrics: metrics, gates: gates, cpus: raw.cpus, memoryBytes: raw.memoryBytes,
                          timeoutSeconds: raw.timeoutSeconds, network: raw.network, paramsUsed: used.sorted(), location: location)
        stage.image = raw.image
        return stage
    }

    /// What `${…}` can name in one variant.
    struct Context {
        let params: [String: Param]
        let bindings: [MatrixBinding]
        let variant: String?
        let matrixNames: [String]
        var usedMatrix = false

        mutating func interpolate(_ text: Diagnostics.Text, _ used: inout Set<String>, _ d: inout Diagnostics) -> String {
            let template = Template(text.value)
            for near in template.misspelt {
                d.error(.undefinedVariable, "'\(near.text)' looks like a kiln variable but names none",
                        at: text.scalar.mark(ofScalarAt: near.offset, in: text.mark),
                        hint: "did you mean '\(near.suggestion)'? (write $${ for a literal ${)")
            }
            var result = ""
            for piece in template.pieces {
                switch piece {
                case .literal(let s): result += s
                case .reference(let namespace, let name, let offset):
                    let mark = text.scalar.mark(ofScalarAt: offset, in: text.mark)
                    switch namespace {
                    case "params":
                        if let param = params[name] {
                            used.insert(name)
                            result += param.value.description
                        } else {
                            d.error(.undefinedVariable, "'${params.\(name)}' names no param", at: mark,
                                    hint: params.isEmpty ? "declare it under `params:`"
                                        : Suggestion.hint(for: name, among: params.keys.sorted(), what: "params"))
                        }
                    case "matrix":
                        if let binding = bindings.first(where: { $0.name == name }) {
                            usedMatrix = true
                            result += binding.value.description
                        } else {
                            d.error(.undefinedVariable, "'${matrix.\(name)}' names no matrix variable of this stage", at: mark,
                                    hint: matrixNames.isEmpty ? "this stage has no `matrix:`"
                                        : Suggestion.hint(for: name, among: matrixNames, what: "matrix variables"))
                        }
                    default:  // variant
                        if let variant, name.isEmpty {
                            usedMatrix = true
                            result += variant
                        } else {
                            d.error(.undefinedVariable, variant == nil ? "'${variant}' is defined only in stages with a `matrix:`"
                                        : "'${variant.\(name)}' is not defined; `${variant}` is the variant's name",
                                    at: mark)
                        }
                    }
                }
            }
            return result
        }
    }
}

/// The checks across stages, and the DAG: outputs that collide, inputs nobody produces that are not
/// in the workspace, stages reading their own outputs, and cycles.
extension Recipe {
    static func graph(_ stages: [Stage], marks: [Mark], fileExists: (String) -> Bool, _ d: inout Diagnostics) -> StageGraph {
        // Every output by path; collisions with an equal path or an enclosing folder are errors.
        var producer: [String: (stage: Int, output: WorkspacePath)] = [:]
        for i in stages.indices {
            for output in stages[i].outputs {
                if let other = producer[output.path], other.stage != i {
                    d.error(.outputConflict, "stages '\(stages[other.stage].name)' and '\(stages[i].name)' both write '\(output)'",
                            at: mark(output.location), hint: "each path is created by one stage; rename one of the outputs")
                    continue
                }
                producer[output.path] = (i, output)
            }
        }
        for i in stages.indices {
            for output in stages[i].outputs {
                for ancestor in ancestors(output.path) {
                    if let other = producer[ancestor], other.stage != i {
                        d.error(.outputConflict, "output '\(output)' of stage '\(stages[i].name)' is inside '\(other.output)', an output of stage '\(stages[other.stage].name)'",
                                at: mark(output.location), hint: "a folder output belongs to one stage: move the file out of it, or declare the files one by one")
                    }
                }
            }
        }
        let sortedOutputs = producer.keys.sorted()

        var dependencies = [[Int]](repeating: [], count: stages.count)
        for i in stages.indices {
            for input in stages[i].inputs {
                var producers = Set<Int>()
                if input.isGlob {
                    for (_, entry) in producer where input.reads(entry.output) { producers.insert(entry.stage) }
                } else {
                    // The same path, or a folder output holding the input …
                    for path in [input.path] + ancestors(input.path) {
                        if let entry = producer[path] { producers.insert(entry.stage) }
                    }
                    // … or outputs inside a folder input.
                    let prefix = input.path + "/"
                    var lo = sortedOutputs.partitioningIndex(where: { $0 < prefix })
                    while lo < sortedOutputs.count, sortedOutputs[lo].hasPrefix(prefix) {
                        producers.insert(producer[sortedOutputs[lo]]!.stage)
                        lo += 1
                    }
                }
                let readsItself = producers.remove(i) != nil
                if readsItself {
                    d.error(.cycle, "stage '\(stages[i].name)' reads '\(input)', which it writes itself", at: mark(input.location),
                            hint: "a stage cannot read its own output: write to a new path, or split the stage in two")
                }
                if producers.isEmpty, !readsItself, !input.isGlob, !fileExists(input.description) {
                    d.error(.missingInput, "input '\(input)' of stage '\(stages[i].name)' does not exist and no stage writes it",
                            at: mark(input.location), hint: missingInputHint(input, stages, producer, sortedOutputs))
                }
                dependencies[i].append(contentsOf: producers)
            }
        }
        let graph = StageGraph(dependencies: dependencies)
        for cycle in graph.cycles() {
            let names = cycle.map { stages[$0].name }
            d.error(.cycle, "the stages depend on each other in a cycle: \(names.joined(separator: " → "))", at: marks[cycle[0]],
                    hint: "each arrow is a stage needing an output of the next; break the cycle by removing one of those inputs")
        }
        return graph
    }

    /// A near output's name, or where matrix variants put the file, or how to provide it.
    private static func missingInputHint(_ input: WorkspacePath, _ stages: [Stage],
                                         _ producer: [String: (stage: Int, output: WorkspacePath)], _ sortedOutputs: [String]) -> String {
        if let near = Suggestion.closest(to: input.path, among: sortedOutputs) {
            return "did you mean '\(near)', an output of stage '\(stages[producer[near]!.stage].name)'?"
        }
        let inVariants = sortedOutputs.filter { $0.hasSuffix("/" + input.path) && !stages[producer[$0]!.stage].matrix.isEmpty }
        if let first = inVariants.first {
            let base = stages[producer[first]!.stage].baseName
            return "matrix stage '\(base)' writes it in each variant's folder: read '\(first)', or all of them with '\(base)@*/\(input.path)'"
        }
        return "create it in the workspace, or add it to the outputs of the stage that makes it"
    }

    private static func mark(_ location: SourceLocation) -> Mark { Mark(line: location.line, column: location.column) }

    /// `a/b/c` → `a/b`, `a`.
    static func ancestors(_ path: String) -> [String] {
        var result: [String] = []
        var current = Substring(path)
        while let slash = current.lastIndex(of: "/") {
            current = current[..<slash]
            result.append(String(current))
        }
        return result
    }
}

extension Array {
    /// The first index whose element fails `belongsBefore` (the array is partitioned by it).
    func partitioningIndex(where belongsBefore: (Element) -> Bool) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if belongsBefore(self[mid]) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

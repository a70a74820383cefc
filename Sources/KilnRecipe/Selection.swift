/// `kiln run RECIPE train` names stages on the command line; this finds them and what they need.
public struct StageSelectionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var recipe: String
    /// The name nobody declares.
    public var name: String
    /// The closest stage name, if any is close.
    public var suggestion: String?

    public var description: String {
        "recipe '\(recipe)' has no stage '\(name)'" + (suggestion.map { "; did you mean '\($0)'?" } ?? "")
    }
}

extension Recipe {
    /// The named stages and everything they need, in the stable topological order. A stage's base
    /// name selects all its matrix variants (`train`), a variant's full name only it (`train@C=1`);
    /// no names selects every stage.
    public func select(_ names: [String]) throws(StageSelectionError) -> [Stage] {
        guard !names.isEmpty else { return (graph.topologicalOrder() ?? Array(stages.indices)).map { stages[$0] } }
        var chosen: [Int] = []
        for name in names {
            let matches = stages.indices.filter { stages[$0].name == name || stages[$0].baseName == name }
            guard !matches.isEmpty else {
                let known = Array(Set(stages.map(\.baseName) + stages.map(\.name))).sorted()
                throw StageSelectionError(recipe: self.name, name: name, suggestion: Suggestion.closest(to: name, among: known))
            }
            chosen += matches
        }
        return graph.closure(of: chosen).map { stages[$0] }
    }
}

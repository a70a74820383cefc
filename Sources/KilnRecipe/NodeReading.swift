/// Typed reads from YAML nodes that record an error (and return nil) on a mismatch, so decoding
/// goes on and reports every problem.
extension Diagnostics {
    /// A text with where it is, for interpolation errors that point inside it.
    struct Text {
        var value: String
        var mark: Mark
        var scalar: YAMLScalar
    }

    /// A mapping's entries with string keys; duplicate and non-scalar keys are errors.
    mutating func mapping(_ node: YAMLNode, _ what: String) -> [(key: String, keyMark: Mark, value: YAMLNode)]? {
        guard case .mapping(let pairs) = node.content else {
            error(.wrongType, "\(what) must be a mapping, found \(node.kindName)", at: node.mark)
            return nil
        }
        var seen: [String: Mark] = [:]
        var entries: [(key: String, keyMark: Mark, value: YAMLNode)] = []
        for pair in pairs {
            guard let key = pair.key.scalar else {
                error(.wrongType, "keys in \(what) must be names, found \(pair.key.kindName)", at: pair.key.mark)
                continue
            }
            if let first = seen[key.value] {
                error(.duplicateKey, "'\(key.value)' appears twice in \(what) (first at line \(first.line), column \(first.column))",
                      at: pair.key.mark, hint: "keep one of them")
                continue
            }
            seen[key.value] = pair.key.mark
            entries.append((key.value, pair.key.mark, pair.value))
        }
        return entries
    }

    /// Reports keys not in `allowed`, with a did-you-mean.
    mutating func checkKeys(_ entries: [(key: String, keyMark: Mark, value: YAMLNode)], allowed: [String], in what: String) {
        for entry in entries where !allowed.contains(entry.key) {
            error(.unknownKey, "unknown key '\(entry.key)' in \(what)", at: entry.keyMark,
                  hint: Suggestion.hint(for: entry.key, among: allowed))
        }
    }

    /// A scalar's text (numbers and booleans as written); null, lists and mappings are errors.
    mutating func text(_ node: YAMLNode, _ what: String) -> Text? {
        guard let scalar = node.scalar, !(scalar.isPlain && scalar.resolved == .null) else {
            error(.wrongType, "\(what) must be a string, found \(node.kindName)", at: node.mark)
            return nil
        }
        return Text(value: scalar.value, mark: node.mark, scalar: scalar)
    }

    /// A list of texts; a single scalar is accepted as a list of one.
    mutating func texts(_ node: YAMLNode, _ what: String) -> [Text] {
        switch node.content {
        case .sequence(let items):
            return items.compactMap { text($0, "each of \(what)") }
        case .scalar(let s) where !(s.isPlain && s.resolved == .null):
            return text(node, what).map { [$0] } ?? []
        default:
            error(.wrongType, "\(what) must be a list of strings, found \(node.kindName)", at: node.mark)
            return []
        }
    }

    /// A typed scalar value for params and matrix values.
    mutating func paramValue(_ node: YAMLNode, _ what: String) -> ParamValue? {
        guard let scalar = node.scalar else {
            error(.wrongType, "\(what) must be a number, string or boolean, found \(node.kindName)", at: node.mark)
            return nil
        }
        switch scalar.resolved {
        case .int(let v): return .int(v)
        case .double(let v):
            guard v.isFinite else {
                error(.invalidValue, "\(what) must be a finite number, found \(scalar.value)", at: node.mark)
                return nil
            }
            return .double(v)
        case .bool(let v): return .bool(v)
        case .string(let v): return .string(v)
        case .null:
            error(.wrongType, "\(what) must be a number, string or boolean, found null", at: node.mark,
                  hint: "write a value, or \"\" for an empty string")
            return nil
        }
    }
}

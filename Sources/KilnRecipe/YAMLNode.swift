/// A 1-based position in the YAML text (a `SourceLocation` without the file).
struct Mark: Hashable, Sendable {
    var line: Int
    var column: Int
    init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

/// A composed YAML node with the position of its first character. Aliases are already resolved
/// (sharing storage, so an alias costs nothing) and `<<` merge keys applied.
struct YAMLNode: Sendable {
    enum Content: Sendable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([(key: YAMLNode, value: YAMLNode)])
    }

    var content: Content
    var mark: Mark

    /// What a user calls this kind of node in an error message.
    var kindName: String {
        switch content {
        case .scalar(let s): return s.resolved.kindName
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    var scalar: YAMLScalar? {
        if case .scalar(let s) = content { return s }
        return nil
    }
}

/// A scalar's text, whether it was quoted, and where its characters start.
struct YAMLScalar: Sendable {
    var value: String
    /// Plain scalars are typed by YAML 1.2's core schema; quoted ones (or `!!str`) are strings.
    var isPlain: Bool
    /// Columns from the node's mark to the value's first character, when the value appears verbatim on
    /// one line (so `${params.x}` errors can point at the `$`); nil for folded, multi-line or escaped text.
    var valueOffset: Int?

    /// The value typed by YAML 1.2's core schema.
    var resolved: ScalarValue { isPlain ? ScalarValue.resolve(plain: value) : .string(value) }

    /// The mark of the Unicode scalar at `index` in the value, or the node's own mark if unknown.
    func mark(ofScalarAt index: Int, in node: Mark) -> Mark {
        guard let valueOffset else { return node }
        return Mark(line: node.line, column: node.column + valueOffset + index)
    }
}

/// A scalar typed by YAML 1.2's core schema.
enum ScalarValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)

    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        }
    }

    /// YAML 1.2 core schema: `null ~` and empty, `true false` (any case form the spec allows),
    /// decimal, `0o` and `0x` integers, floats with `.inf` and `.nan`; anything else is a string.
    static func resolve(plain text: String) -> ScalarValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        if text.hasPrefix("0x"), let v = Int(text.dropFirst(2), radix: 16) { return .int(v) }
        if text.hasPrefix("0o"), let v = Int(text.dropFirst(2), radix: 8) { return .int(v) }
        let scalars = text.unicodeScalars
        let isDecimal = scalars.allSatisfy { ("0"..."9").contains($0) || $0 == "-" || $0 == "+" }
        if isDecimal, let v = Int(text) { return .int(v) }
        // Double() accepts "inf", "nan" and hex floats, which YAML does not: require digits and [.eE+-].
        let numeric = scalars.allSatisfy { ("0"..."9").contains($0) || ".eE+-".unicodeScalars.contains($0) }
        if numeric, scalars.contains(where: { ("0"..."9").contains($0) }), let v = Double(text) { return .double(v) }
        return .string(text)
    }
}

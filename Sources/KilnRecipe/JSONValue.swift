/// A JSON value, as a stage's metrics file holds it. Decode one with FoundationEssentials'
/// `JSONDecoder().decode(JSONValue.self, from: data)`.
public enum JSONValue: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let v = try? container.decode(Bool.self) { self = .bool(v) }
        else if let v = try? container.decode(Double.self) { self = .number(v) }
        else if let v = try? container.decode(String.self) { self = .string(v) }
        else if let v = try? container.decode([JSONValue].self) { self = .array(v) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let v): try container.encode(v)
        case .number(let v): try container.encode(v)
        case .string(let v): try container.encode(v)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        }
    }

    /// The value at a dotted key: `accuracy`, `eval.f1`, `scores.0` (a number indexes an array).
    /// A key that is itself dotted (`{"eval.f1": …}`) is found too: the longest matching key wins.
    public func value(at dottedKey: String) -> JSONValue? {
        lookup(dottedKey.split(separator: ".", omittingEmptySubsequences: false).map(String.init)[...])
    }

    private func lookup(_ parts: ArraySlice<String>) -> JSONValue? {
        guard let first = parts.first else { return self }
        switch self {
        case .object(let members):
            for take in stride(from: parts.count, through: 1, by: -1) {
                let key = parts.prefix(take).joined(separator: ".")
                if let member = members[key], let found = member.lookup(parts.dropFirst(take)) { return found }
            }
            return nil
        case .array(let items):
            guard let index = Int(first), items.indices.contains(index) else { return nil }
            return items[index].lookup(parts.dropFirst())
        default:
            return nil
        }
    }

    /// The number, if this is one.
    public var number: Double? { if case .number(let v) = self { return v } else { return nil } }
}

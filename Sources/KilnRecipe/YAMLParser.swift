import CLibYAML

/// Composes YAML text into `YAMLNode`s with libyaml's event parser, within limits that keep hostile
/// input (deep nesting, alias bombs, huge files) from exhausting the stack, memory or time.
struct YAMLParser {
    /// Files larger than this are refused before parsing: recipes are a few kilobytes.
    static let maxBytes = 4 << 20
    /// Nesting deeper than this is refused: decoding walks the tree recursively.
    static let maxDepth = 64
    /// Nodes in the document (a 10,000-stage recipe has about 100,000).
    static let maxNodes = 2_000_000
    /// Nodes that aliases repeat: a "billion laughs" document stops here, not at a billion.
    static let maxAliasedNodes = 100_000

    struct Failure: Error {
        var code: RecipeError.Code
        var message: String
        var mark: Mark
        var hint: String?
    }

    /// The single document in `bytes`; nil for an empty stream.
    static func parse(_ bytes: [UInt8]) throws(Failure) -> YAMLNode? {
        guard bytes.count <= maxBytes else {
            throw Failure(code: .unreadable, message: "the file is \(bytes.count) bytes; recipes may be at most \(maxBytes) bytes",
                          mark: Mark(line: 1, column: 1))
        }
        var composer = Composer(source: bytes)
        var failure: Failure?
        bytes.withUnsafeBufferPointer { buffer in
            do throws(Failure) {
                try composer.run(buffer)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return composer.root
    }
}

/// Builds the node tree from events with an explicit stack (no recursion on input depth).
private struct Composer {
    struct Open {
        var isMapping: Bool
        var mark: Mark
        var anchor: String?
        var items: [YAMLNode] = []
        var weight = 1
    }

    let source: [UInt8]
    var stack: [Open] = []
    var anchors: [String: (node: YAMLNode, weight: Int)] = [:]
    var root: YAMLNode?
    var documents = 0
    var totalWeight = 0
    var aliasedWeight = 0
    /// libyaml's mark.index counts characters: the source as Unicode scalars, when it is not ASCII.
    let scalars: [Unicode.Scalar]?

    init(source: [UInt8]) {
        self.source = source
        scalars = source.allSatisfy { $0 < 0x80 } ? nil : Array(String(decoding: source, as: UTF8.self).unicodeScalars)
    }

    mutating func run(_ buffer: UnsafeBufferPointer<UInt8>) throws(YAMLParser.Failure) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw .init(code: .unreadable, message: "libyaml could not start (out of memory)", mark: Mark(line: 1, column: 1))
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!, buffer.count)
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.failure(of: parser) }
            defer { yaml_event_delete(&event) }
            if event.type == YAML_STREAM_END_EVENT { return }
            try handle(event)
        }
    }

    static func failure(of parser: yaml_parser_t) -> YAMLParser.Failure {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
        let mark = Mark(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
        var message = "invalid YAML: \(problem)"
        if let context = parser.context.map({ String(cString: $0) }) {
            message += " (\(context) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1))"
        }
        var hint: String?
        if problem.contains("cannot start any token") || problem.contains("tab") {
            hint = "YAML indents with spaces, never tabs; quote values that start with @, ` or %"
        } else if parser.error == YAML_READER_ERROR {
            hint = "recipes are UTF-8 text without control characters"
        }
        return .init(code: .syntax, message: message, mark: mark, hint: hint)
    }

    private static func mark(_ m: yaml_mark_t) -> Mark { Mark(line: Int(m.line) + 1, column: Int(m.column) + 1) }

    private static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        p.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }

    mutating func handle(_ event: yaml_event_t) throws(YAMLParser.Failure) {
        let mark = Self.mark(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw .init(code: .syntax, message: "a recipe is one YAML document; found a second one", mark: mark,
                            hint: "remove the `---` line and what follows it, or put it in another recipe")
            }
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let value = String(decoding: UnsafeBufferPointer(start: s.value, count: Int(s.length)), as: UTF8.self)
            let tag = Self.string(s.tag)
            var isPlain = s.style == YAML_PLAIN_SCALAR_STYLE
            if let tag {
                switch tag {
                case "tag:yaml.org,2002:str": isPlain = false
                case "!": isPlain = false  // the non-specific tag: a string
                default:
                    throw .init(code: .syntax, message: "unsupported YAML tag '\(tag)'", mark: mark,
                                hint: "write the value without a tag; quote it to make it a string")
                }
            }
            let node = YAMLNode(content: .scalar(YAMLScalar(value: value, isPlain: isPlain,
                                                            valueOffset: valueOffset(event, value: value))), mark: mark)
            try add(node, weight: 1, anchor: Self.string(s.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                throw .init(code: .syntax, message: "alias '*\(name)' names no anchor defined before it", mark: mark)
            }
            var node = target.node
            node.mark = mark
            aliasedWeight += target.weight
            guard aliasedWeight <= YAMLParser.maxAliasedNodes else {
                throw .init(code: .tooComplex,
                            message: "aliases repeat more than \(YAMLParser.maxAliasedNodes) nodes",
                            mark: mark, hint: "a recipe needs no alias repeated this often (a \"billion laughs\" document?)")
            }
            try add(node, weight: target.weight, anchor: nil)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            let tag = Self.string(isMapping ? event.data.mapping_start.tag : event.data.sequence_start.tag)
            if let tag, tag != "tag:yaml.org,2002:map", tag != "tag:yaml.org,2002:seq", tag != "!" {
                throw .init(code: .syntax, message: "unsupported YAML tag '\(tag)'", mark: mark, hint: "remove the tag")
            }
            guard stack.count < YAMLParser.maxDepth else {
                throw .init(code: .tooComplex, message: "nesting deeper than \(YAMLParser.maxDepth) levels", mark: mark,
                            hint: "recipes need only a few levels: stages, then a stage's fields")
            }
            let anchor = Self.string(isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
            stack.append(Open(isMapping: isMapping, mark: mark, anchor: anchor))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let open = stack.removeLast()
            let content: YAMLNode.Content
            if open.isMapping {
                var pairs: [(key: YAMLNode, value: YAMLNode)] = []
                var index = 0
                while index + 1 < open.items.count {
                    pairs.append((open.items[index], open.items[index + 1]))
                    index += 2
                }
                content = .mapping(try Self.merge(pairs))
            } else {
                content = .sequence(open.items)
            }
            // The collection's own weight was counted when it opened; its children as they came.
            try add(YAMLNode(content: content, mark: open.mark), weight: open.weight, anchor: open.anchor, counted: true)
        default:
            break  // stream and document ends carry nothing
        }
    }

    /// Adds a finished node to the open collection (or makes it the root), charging its weight.
    mutating func add(_ node: YAMLNode, weight: Int, anchor: String?, counted: Bool = false) throws(YAMLParser.Failure) {
        if !counted {
            totalWeight += weight
            guard totalWeight <= YAMLParser.maxNodes else {
                throw .init(code: .tooComplex, message: "the document has more than \(YAMLParser.maxNodes) nodes", mark: node.mark)
            }
        } else {
            totalWeight += 1  // the collection itself
            guard totalWeight <= YAMLParser.maxNodes else {
                throw .init(code: .tooComplex, message: "the document has more than \(YAMLParser.maxNodes) nodes", mark: node.mark)
            }
        }
        if let anchor { anchors[anchor] = (node, weight) }
        if stack.isEmpty {
            root = node
        } else {
            stack[stack.count - 1].items.append(node)
            stack[stack.count - 1].weight += weight
        }
    }

    /// Applies `<<` merge keys: the merged mappings' pairs whose keys the mapping does not set itself.
    static func merge(_ pairs: [(key: YAMLNode, value: YAMLNode)]) throws(YAMLParser.Failure) -> [(key: YAMLNode, value: YAMLNode)] {
        guard pairs.contains(where: { $0.key.scalar.map { $0.isPlain && $0.value == "<<" } ?? false }) else { return pairs }
        let own = Set(pairs.compactMap { p -> String? in
            guard let s = p.key.scalar, !(s.isPlain && s.value == "<<") else { return nil }
            return s.value
        })
        var result: [(key: YAMLNode, value: YAMLNode)] = []
        var merged = Set<String>()
        for pair in pairs {
            guard let key = pair.key.scalar, key.isPlain, key.value == "<<" else {
                result.append(pair)
                continue
            }
            let sources: [YAMLNode]
            switch pair.value.content {
            case .mapping: sources = [pair.value]
            case .sequence(let items): sources = items
            case .scalar:
                throw .init(code: .syntax, message: "a `<<` merge key needs a mapping or a list of mappings, found \(pair.value.kindName)",
                            mark: pair.value.mark)
            }
            for source in sources {
                guard case .mapping(let inner) = source.content else {
                    throw .init(code: .syntax, message: "a `<<` merge key needs mappings, found \(source.kindName)", mark: source.mark)
                }
                for p in inner {
                    let name = p.key.scalar?.value ?? ""
                    if own.contains(name) || merged.contains(name) { continue }
                    merged.insert(name)
                    result.append(p)
                }
            }
        }
        return result
    }

    /// Where the value's first character is relative to the node's mark, if the value appears
    /// verbatim between the marks (plain, or quoted without escapes).
    func valueOffset(_ event: yaml_event_t, value: String) -> Int? {
        let start = Int(event.start_mark.index), end = Int(event.end_mark.index)
        guard event.start_mark.line == event.end_mark.line, start <= end else { return nil }
        if let scalars {
            guard end <= scalars.count else { return nil }
            return Self.offset(raw: scalars[start..<end], value: Array(value.unicodeScalars), quotes: ["'", "\""])
        }
        guard end <= source.count else { return nil }
        return Self.offset(raw: source[start..<end], value: Array(value.utf8), quotes: [UInt8(ascii: "'"), UInt8(ascii: "\"")])
    }

    /// 0 if `raw` is the value itself, 1 if it is the value in quotes, else nil.
    static func offset<T: Equatable>(raw: ArraySlice<T>, value: [T], quotes: [T]) -> Int? {
        if raw.elementsEqual(value) { return 0 }
        if raw.count == value.count + 2, let q = raw.first, raw.last == q, quotes.contains(q),
           raw.dropFirst().dropLast().elementsEqual(value) {
            return 1
        }
        return nil
    }
}

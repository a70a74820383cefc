/// A position in a recipe file: 1-based line and column (columns count Unicode scalars, as libyaml does).
public struct SourceLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The file as the user named it (e.g. `recipes/digits.yaml`).
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, the form editors and compilers use.
    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// One problem found in a recipe, with where it is, what was expected and how to fix it.
public struct RecipeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem; stable, so tools and tests can match on it.
    public enum Code: String, Hashable, Sendable {
        case unreadable          // not a file kiln can read (too large, not UTF-8)
        case syntax              // libyaml rejected the text
        case tooComplex          // nesting or alias expansion beyond kiln's limits
        case duplicateKey
        case unknownKey
        case missingKey
        case wrongType
        case invalidValue
        case unsupportedVersion
        case undefinedVariable
        case badOverride
        case pathOutsideWorkspace
        case invalidPath
        case missingInput
        case outputConflict
        case cycle
        case badGate
    }

    public var code: Code
    /// What is wrong, including what was expected and what was found.
    public var message: String
    public var location: SourceLocation
    /// How to fix it, when kiln can tell (`did you mean 'outputs'?`).
    public var hint: String?

    public init(_ code: Code, _ message: String, at location: SourceLocation, hint: String? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.hint = hint
    }

    /// `recipes/x.yaml:3:5: error: …` and, on the next line, `  hint: …`.
    public var description: String {
        var text = "\(location): error: \(message)"
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }
}

/// Every problem found in a recipe, in file order: kiln reports them all at once, not just the first.
public struct RecipeErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [RecipeError]

    public init(_ errors: [RecipeError]) {
        // Stable sort: errors at one position keep the order they were found in.
        self.errors = errors.enumerated()
            .sorted { ($0.element.location, $0.offset) < ($1.element.location, $1.offset) }
            .map(\.element)
    }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Collects errors while decoding goes on, so one pass reports everything.
struct Diagnostics {
    let file: String
    private(set) var errors: [RecipeError] = []

    init(file: String) { self.file = file }

    func location(_ mark: Mark) -> SourceLocation {
        SourceLocation(file: file, line: mark.line, column: mark.column)
    }

    mutating func error(_ code: RecipeError.Code, _ message: String, at mark: Mark, hint: String? = nil) {
        errors.append(RecipeError(code, message, at: location(mark), hint: hint))
    }

    var isEmpty: Bool { errors.isEmpty }
}

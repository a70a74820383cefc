/// A gate such as `accuracy >= 0.9 and loss < 0.2`: comparisons of dotted metric keys and numbers
/// (`< <= > >= == !=`) joined by `and`. Parsed when the recipe loads; evaluated by the engine.
public struct GateExpression: Hashable, Sendable, CustomStringConvertible {
    /// A comparison operator, spelt as in the gate.
    public enum Operator: String, Hashable, Sendable, CaseIterable {
        case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">=", equal = "==", notEqual = "!="

        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .less: return a < b
            case .lessOrEqual: return a <= b
            case .greater: return a > b
            case .greaterOrEqual: return a >= b
            case .equal: return a == b
            case .notEqual: return a != b
            }
        }
    }

    /// One side of a comparison.
    public enum Operand: Hashable, Sendable, CustomStringConvertible {
        /// A dotted key into the metrics JSON.
        case key(String)
        case number(Double)

        public var description: String {
            switch self {
            case .key(let k): return k
            case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : n.description
            }
        }
    }

    /// `left op right`, e.g. `accuracy >= 0.9`.
    public struct Comparison: Hashable, Sendable, CustomStringConvertible {
        public var left: Operand
        public var op: Operator
        public var right: Operand
        public var description: String { "\(left) \(op.rawValue) \(right)" }
    }

    /// The text as written.
    public var text: String
    /// All must hold.
    public var comparisons: [Comparison]
    public var description: String { text }

    /// Why a gate did not parse: a message and the index (Unicode scalars) in the text where it went wrong.
    public struct ParseError: Error, Hashable, Sendable {
        public var message: String
        public var offset: Int
    }

    /// Parses a gate; the error says what was expected and where (`offset`, in Unicode scalars).
    public init(parsing text: String) throws(ParseError) {
        self.text = text
        var tokens = try Self.tokenize(text)
        var comparisons: [Comparison] = []
        while true {
            guard case .operand(let left, _)? = tokens.first else {
                throw ParseError(message: "expected a metric name or a number", offset: tokens.first?.offset ?? text.unicodeScalars.count)
            }
            tokens.removeFirst()
            guard case .op(let op, _)? = tokens.first else {
                throw ParseError(message: "expected a comparison (< <= > >= == !=) after '\(left)'",
                                 offset: tokens.first?.offset ?? text.unicodeScalars.count)
            }
            tokens.removeFirst()
            guard case .operand(let right, _)? = tokens.first else {
                throw ParseError(message: "expected a metric name or a number after '\(op.rawValue)'",
                                 offset: tokens.first?.offset ?? text.unicodeScalars.count)
            }
            tokens.removeFirst()
            comparisons.append(Comparison(left: left, op: op, right: right))
            guard let next = tokens.first else { break }
            guard case .and = next else {
                throw ParseError(message: "expected 'and' or the end of the gate", offset: next.offset)
            }
            tokens.removeFirst()
        }
        self.comparisons = comparisons
    }

    private enum Token {
        case operand(Operand, Int)
        case op(Operator, Int)
        case and(Int)
        var offset: Int {
            switch self {
            case .operand(_, let o), .op(_, let o), .and(let o): return o
            }
        }
    }

    private static func tokenize(_ text: String) throws(ParseError) -> [Token] {
        let s = Array(text.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        func isWord(_ c: Unicode.Scalar) -> Bool {
            c.properties.isAlphabetic || ("0"..."9").contains(c) || "_.-+".unicodeScalars.contains(c)
        }
        while i < s.count {
            let c = s[i]
            if c == " " || c == "\t" { i += 1; continue }
            if "<>=!".unicodeScalars.contains(c) {
                let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
                if let op = Operator(rawValue: two) { tokens.append(.op(op, i)); i += 2; continue }
                if let op = Operator(rawValue: String(c)), c != "=", c != "!" { tokens.append(.op(op, i)); i += 1; continue }
                throw ParseError(message: "'\(c)' is not a comparison; expected one of < <= > >= == !=", offset: i)
            }
            guard isWord(c) else { throw ParseError(message: "unexpected character '\(c)'", offset: i) }
            let start = i
            while i < s.count, isWord(s[i]) { i += 1 }
            let word = String(String.UnicodeScalarView(s[start..<i]))
            if word == "and" { tokens.append(.and(start)); continue }
            if let first = word.unicodeScalars.first, ("0"..."9").contains(first) || "-+.".unicodeScalars.contains(first) {
                guard let number = Double(word), number.isFinite else {
                    throw ParseError(message: "'\(word)' is not a number", offset: start)
                }
                tokens.append(.operand(.number(number), start))
            } else {
                if word.hasSuffix(".") || word.contains("..") {
                    throw ParseError(message: "'\(word)' is not a metric name; expected dotted keys like eval.accuracy", offset: start)
                }
                tokens.append(.operand(.key(word), start))
            }
        }
        return tokens
    }

    /// One comparison's outcome, with the values seen, for the gate table.
    public struct Check: Hashable, Sendable {
        public var comparison: Comparison
        /// The left side's value (nil if missing or not a number; booleans count as 1 and 0).
        public var left: Double?
        /// The right side's value, likewise.
        public var right: Double?
        public var passed: Bool
        /// Why it could not be evaluated (`accuracy is missing from the metrics`), if so.
        public var problem: String?
    }

    /// Evaluates every comparison against `metrics` (all are checked, for a complete table).
    public func evaluate(_ metrics: JSONValue) -> [Check] {
        comparisons.map { comparison in
            var problems: [String] = []
            func resolve(_ operand: Operand) -> Double? {
                switch operand {
                case .number(let n): return n
                case .key(let key):
                    guard let value = metrics.value(at: key) else { problems.append("\(key) is missing from the metrics"); return nil }
                    if case .bool(let b) = value { return b ? 1 : 0 }
                    guard let n = value.number else { problems.append("\(key) is not a number"); return nil }
                    return n
                }
            }
            let left = resolve(comparison.left), right = resolve(comparison.right)
            let passed = left.flatMap { l in right.map { r in comparison.op.holds(l, r) } } ?? false
            return Check(comparison: comparison, left: left, right: right, passed: passed,
                         problem: problems.isEmpty ? nil : problems.joined(separator: "; "))
        }
    }

    /// True if every comparison holds.
    public func passes(_ metrics: JSONValue) -> Bool { evaluate(metrics).allSatisfy(\.passed) }
}

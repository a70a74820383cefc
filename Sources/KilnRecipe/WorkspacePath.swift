/// A path inside the workspace as a recipe declares it: relative, normalised (no `.`, `..` or empty
/// components), a directory when written with a trailing `/`, a glob when it has `*`, `?` or `[`.
public struct WorkspacePath: Hashable, Sendable, CustomStringConvertible {
    /// The normalised path without a trailing `/` (`data`, `recipes/digits/train.py`, `logs/*.txt`).
    public var path: String
    public var isDirectory: Bool
    /// Globs (inputs only): `*` and `?` stay within one component, `**` spans any, `[a-z]`/`[!x]` classes.
    public var isGlob: Bool
    /// Where the path is written in the recipe (not part of equality).
    public var location: SourceLocation

    /// As written back to the user: `data/` for a directory.
    public var description: String { isDirectory ? path + "/" : path }

    public static func == (a: WorkspacePath, b: WorkspacePath) -> Bool {
        a.path == b.path && a.isDirectory == b.isDirectory && a.isGlob == b.isGlob
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(path)
        hasher.combine(isDirectory)
        hasher.combine(isGlob)
    }

    /// Why a path was refused.
    enum Problem: Error, Equatable {
        case empty, absolute, parent, wholeWorkspace, nul

        var code: RecipeError.Code {
            switch self {
            case .absolute, .parent: return .pathOutsideWorkspace
            case .empty, .wholeWorkspace, .nul: return .invalidPath
            }
        }

        func message(_ text: String, role: String) -> String {
            switch self {
            case .empty: return "\(role) path is empty"
            case .absolute: return "\(role) '\(text)' is absolute; expected a path inside the workspace"
            case .parent: return "\(role) '\(text)' leaves the workspace through '..'; expected a path inside it"
            case .wholeWorkspace: return "\(role) '\(text)' is the whole workspace; expected a file or folder inside it"
            case .nul: return "\(role) path contains a NUL character"
            }
        }

        var hint: String {
            switch self {
            case .absolute, .parent: return "the sandbox sees only the workspace, at /work: write paths relative to the folder holding recipes/"
            case .wholeWorkspace: return "name the files or folders the stage needs"
            case .empty, .nul: return "write a relative path such as data/ or model.pkl"
            }
        }
    }

    /// Normalises `text` (`./a//b/` → `a/b`, a directory).
    init(parsing text: String, location: SourceLocation) throws(Problem) {
        guard !text.isEmpty else { throw .empty }
        guard !text.unicodeScalars.contains("\0") else { throw .nul }
        guard !text.hasPrefix("/") else { throw .absolute }
        isDirectory = text.hasSuffix("/")
        self.location = location
        if Self.isNormal(text) {  // the usual case: nothing to drop or refuse
            path = isDirectory ? String(text.dropLast()) : text
            isGlob = path.utf8.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }
            return
        }
        var components: [Substring] = []
        for component in text.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." { throw .parent }
            components.append(component)
        }
        guard !components.isEmpty else { throw .wholeWorkspace }
        path = components.joined(separator: "/")
        isGlob = path.utf8.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }
    }

    /// True if no component is empty, `.` or `..` (a trailing `/` aside).
    private static func isNormal(_ text: String) -> Bool {
        var length = 0, dots = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "/") {
                if length == 0 || dots == length && dots <= 2 { return false }
                length = 0; dots = 0
                continue
            }
            length += 1
            if c == UInt8(ascii: ".") { dots += 1 }
        }
        return length == 0 ? !text.isEmpty : !(dots == length && dots <= 2)
    }

    /// True if the workspace path `candidate` (relative, no trailing `/`) is what this input names:
    /// the glob matches it, or it is this path, or inside this folder. The engine expands globs with it.
    public func matches(_ candidate: String) -> Bool {
        if isGlob { return Glob.matches(pattern: path, path: candidate) }
        return candidate == path || isDirectory && candidate.hasPrefix(path + "/")
    }

    /// True if `self` (a concrete path) is `other` or lies inside it, when `other` is a directory.
    public func isWithin(_ other: WorkspacePath) -> Bool {
        path == other.path || (other.isDirectory || !other.isGlob) && path.hasPrefix(other.path + "/")
    }

    /// True if the two concrete paths name overlapping files: equal, or one inside the other.
    public func overlaps(_ other: WorkspacePath) -> Bool {
        path == other.path || path.hasPrefix(other.path + "/") || other.path.hasPrefix(path + "/")
    }

    /// True if this input reads something `output` creates: the same path, a file in an output
    /// folder, a folder holding the output, or a glob matching it (or reaching inside it).
    public func reads(_ output: WorkspacePath) -> Bool {
        guard isGlob else { return overlaps(output) }
        if Glob.matches(pattern: path, path: output.path) { return true }
        // `data/*.csv` reads inside `data/`; `**/x` may too.
        let literal = String(path.prefix { $0 != "*" && $0 != "?" && $0 != "[" })
        if literal.hasPrefix(output.path + "/") { return true }
        var prefix = output.path
        while true {  // does the glob match the output or one of its parent folders' contents?
            if Glob.matches(pattern: path, path: prefix) { return true }
            guard let slash = prefix.lastIndex(of: "/") else { return false }
            prefix = String(prefix[..<slash])
        }
    }
}

/// Glob matching by dynamic programming over (pattern, path): linear in their product, never
/// exponential, whatever a recipe writes.
enum Glob {
    private enum Token {
        case literal(Unicode.Scalar)
        case any          // ?
        case star         // * within a component
        case globstar     // ** across components
        case set([ClosedRange<Unicode.Scalar>], negated: Bool)
    }

    private static func tokens(_ pattern: String) -> [Token] {
        let s = Array(pattern.unicodeScalars)
        var out: [Token] = []
        var i = 0
        while i < s.count {
            switch s[i] {
            case "*":
                if i + 1 < s.count, s[i + 1] == "*" {
                    out.append(.globstar)
                    i += 2
                    if i < s.count, s[i] == "/" { i += 1 }  // `**/` also matches no folder at all
                    continue
                }
                out.append(.star)
            case "?": out.append(.any)
            case "[":
                var j = i + 1
                var negated = false
                if j < s.count, s[j] == "!" || s[j] == "^" { negated = true; j += 1 }
                var ranges: [ClosedRange<Unicode.Scalar>] = []
                var first = true
                while j < s.count, s[j] != "]" || first {
                    first = false
                    if j + 2 < s.count, s[j + 1] == "-", s[j + 2] != "]", s[j] <= s[j + 2] {
                        ranges.append(s[j]...s[j + 2]); j += 3
                    } else {
                        ranges.append(s[j]...s[j]); j += 1
                    }
                }
                if j < s.count {
                    out.append(.set(ranges, negated: negated))
                    i = j + 1
                    continue
                }
                out.append(.literal("["))  // unclosed: a literal bracket
            default: out.append(.literal(s[i]))
            }
            i += 1
        }
        return out
    }

    /// True if `path` matches `pattern` in full.
    static func matches(pattern: String, path: String) -> Bool {
        let p = tokens(pattern), t = Array(path.unicodeScalars)
        // row[j]: pattern prefix matches t[0..<j]
        var row = [Bool](repeating: false, count: t.count + 1)
        row[0] = true
        for token in p {
            var next = [Bool](repeating: false, count: t.count + 1)
            switch token {
            case .star, .globstar:
                let crossesSlash: Bool = { if case .globstar = token { return true } else { return false } }()
                for j in 0...t.count {
                    if row[j] { next[j] = true }
                    else if j > 0, next[j - 1], crossesSlash || t[j - 1] != "/" { next[j] = true }
                }
            default:
                for j in 1..<(t.count + 1) where row[j - 1] {
                    let c = t[j - 1]
                    switch token {
                    case .literal(let l): next[j] = c == l
                    case .any: next[j] = c != "/"
                    case .set(let ranges, let negated): next[j] = c != "/" && ranges.contains { $0.contains(c) } != negated
                    default: break
                    }
                }
            }
            row = next
        }
        return row[t.count]
    }
}

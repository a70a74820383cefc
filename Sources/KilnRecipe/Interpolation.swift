/// `${params.X}`, `${matrix.X}` and `${variant}` in a recipe's strings. Any other `${…}` (a shell
/// variable such as `${HOME}`) passes through unchanged; `$${` writes a literal `${`.
struct Template {
    enum Piece: Equatable {
        case literal(String)
        /// A reference, and the index (in Unicode scalars) of its `$` in the text.
        case reference(namespace: String, name: String, offset: Int)
    }

    static let namespaces = ["params", "matrix", "variant"]

    var pieces: [Piece] = []
    /// `${param.x}`-style near misses, with their offsets, for a did-you-mean error.
    var misspelt: [(text: String, suggestion: String, offset: Int)] = []

    init(_ text: String) {
        // Most texts (paths, plain commands) hold no `${`: skip the scalar walk.
        guard text.utf8.contains(UInt8(ascii: "$")) else {
            if !text.isEmpty { pieces = [.literal(text)] }
            return
        }
        let s = Array(text.unicodeScalars)
        var literal = ""
        var runStart = 0  // start of the literal run not yet copied into `literal`
        var i = 0
        func take(_ end: Int) {
            if runStart < end { literal.unicodeScalars.append(contentsOf: s[runStart..<end]) }
        }
        while i < s.count {
            if s[i] == "$", i + 2 < s.count, s[i + 1] == "$", s[i + 2] == "{" {
                take(i + 1)  // keep one `$`, then `{`
                runStart = i + 2
                i += 3
                continue
            }
            guard s[i] == "$", i + 1 < s.count, s[i + 1] == "{", let close = s[(i + 2)...].firstIndex(of: "}") else {
                i += 1
                continue
            }
            let inner = String(String.UnicodeScalarView(s[(i + 2)..<close]))
            let parts = inner.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let namespace = parts[0].trimmingSpaces
            if Self.namespaces.contains(namespace) {
                take(i)
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
                pieces.append(.reference(namespace: namespace, name: parts.count > 1 ? parts[1].trimmingSpaces : "", offset: i))
                runStart = close + 1
            } else if parts.count > 1, let near = Suggestion.closest(to: namespace, among: Self.namespaces) {
                misspelt.append(("${\(inner)}", "${\(near).\(parts[1])}", i))
            }
            i = close + 1
        }
        take(s.count)
        if !literal.isEmpty { pieces.append(.literal(literal)) }
    }

    var references: [(namespace: String, name: String, offset: Int)] {
        pieces.compactMap { if case .reference(let n, let v, let o) = $0 { return (n, v, o) } else { return nil } }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

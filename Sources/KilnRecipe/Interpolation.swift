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
        let s = Array(text.unicodeScalars)
        var literal = String.UnicodeScalarView()
        var i = 0
        func flush(_ pieces: inout [Piece]) {
            if !literal.isEmpty { pieces.append(.literal(String(literal))); literal = .init() }
        }
        while i < s.count {
            if s[i] == "$", i + 2 < s.count, s[i + 1] == "$", s[i + 2] == "{" {
                literal.append("$"); literal.append("{"); i += 3
                continue
            }
            guard s[i] == "$", i + 1 < s.count, s[i + 1] == "{", let close = s[(i + 2)...].firstIndex(of: "}") else {
                literal.append(s[i]); i += 1
                continue
            }
            let inner = String(String.UnicodeScalarView(s[(i + 2)..<close]))
            let parts = inner.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let namespace = parts[0].trimmingSpaces
            if Self.namespaces.contains(namespace) {
                flush(&pieces)
                pieces.append(.reference(namespace: namespace, name: parts.count > 1 ? parts[1].trimmingSpaces : "", offset: i))
            } else {
                if parts.count > 1, let near = Suggestion.closest(to: namespace, among: Self.namespaces) {
                    misspelt.append(("${\(inner)}", "${\(near).\(parts[1])}", i))
                }
                literal.append(contentsOf: s[i...close])
            }
            i = close + 1
        }
        flush(&pieces)
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

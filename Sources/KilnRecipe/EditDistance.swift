/// "Did you mean" suggestions for misspelt keys, stage names and params.
enum Suggestion {
    /// Edit distance counting insertions, deletions, substitutions and swaps of neighbours (the
    /// optimal string alignment distance: `imgae` is one edit from `image`), case-insensitive.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased().unicodeScalars), b = Array(b.lowercased().unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }

    /// The closest candidate within a third of the word's length (at least 1, at most 3), if any;
    /// for names of one or two letters only a difference of case (any other is as near as `x` to `y`).
    static func closest(to word: String, among candidates: some Sequence<String>) -> String? {
        let length = word.unicodeScalars.count
        let limit = length <= 2 ? 0 : max(1, min(3, length / 3))
        var best: (String, Int)?
        for candidate in candidates {
            let d = distance(word, candidate)
            if d <= limit, d < (best?.1 ?? Int.max) { best = (candidate, d) }
        }
        return best?.0
    }

    /// `did you mean 'outputs'?` or, failing that, the list of what is allowed.
    static func hint(for word: String, among candidates: [String], what: String = "keys") -> String {
        if let match = closest(to: word, among: candidates) { return "did you mean '\(match)'?" }
        return candidates.isEmpty ? "there are no \(what) here" : "expected one of: " + candidates.joined(separator: ", ")
    }
}

/// Writes `pinned: NAME@sha256:HEX` into a recipe's `image:` mapping, changing nothing else of the
/// text (comments, order and layout stay): what `kiln image lock` does after building the image.
public enum ImageLock {
    /// The recipe text with `pinned:` set to `reference` in its top-level `image:` mapping, or nil
    /// when the mapping is not one this can edit safely (then the caller says to edit it by hand).
    /// Handles a block mapping (`image:` then indented lines) and a one-line flow mapping
    /// (`image: {build: {…}}`); an existing `pinned:` is replaced.
    public static func rewrite(_ text: String, reference: String) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let index = lines.firstIndex(where: { $0.hasPrefix("image:") }) else { return nil }
        let rest = lines[index].dropFirst("image:".count)
        let value = rest.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map { $0.trimmingSpaces() } ?? ""
        if value.isEmpty {
            // Block mapping: the indented lines after `image:`.
            var indent: String?
            var end = index + 1
            while end < lines.count {
                let line = lines[end]
                let trimmed = line.trimmingSpaces()
                if trimmed.isEmpty || trimmed.hasPrefix("#") { end += 1; continue }
                guard line.first == " " else { break }
                let lead = String(line.prefix { $0 == " " })
                if indent == nil { indent = lead }
                if lead == indent, trimmed.hasPrefix("pinned:") {
                    lines[end] = lead + "pinned: " + reference
                    return lines.joined(separator: "\n")
                }
                end += 1
            }
            guard let indent else { return nil }
            lines.insert(indent + "pinned: " + reference, at: index + 1)
            return lines.joined(separator: "\n")
        }
        guard value.hasPrefix("{"), value.hasSuffix("}") else { return nil }
        var flow = value
        if let pinned = flow.firstRange(of: "pinned:") {
            // Replace the value after `pinned:` up to the next `,` or the closing brace.
            let after = flow[pinned.upperBound...]
            let stop = after.firstIndex(where: { $0 == "," || $0 == "}" }) ?? flow.endIndex
            flow.replaceSubrange(pinned.upperBound..<stop, with: " " + reference)
        } else {
            flow.removeLast()
            flow += ", pinned: \(reference)}"
        }
        let comment = rest.firstIndex(of: "#").map { "  " + rest[$0...] } ?? ""
        lines[index] = "image: " + flow + comment
        return lines.joined(separator: "\n")
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

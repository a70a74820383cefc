/// `kiln run --json`'s `output` event, encoded by hand (it is printed once per line a stage
/// prints): the same text JSONEncoder gives with sorted keys and unescaped slashes.
enum OutputJSON {
    static func event(stage: String, stream: String, line: String) -> String {
        var out = #"{"event":"output","line":"#
        out.reserveCapacity(line.utf8.count + stage.utf8.count + 64)
        append(line, to: &out)
        out += #","stage":"#
        append(stage, to: &out)
        out += #","stream":""# + stream + "\"}\n"
        return out
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped.
    static func append(_ text: String, to out: inout String) {
        out += "\""
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            out += text
            out += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

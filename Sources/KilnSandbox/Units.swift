/// Parses the sizes and durations people write in options and recipes.
public enum Units {
    /// `512M`, `2G`, `1.5G`, `100k`, `4096` (bytes); powers of 1024. Nil if it is not a size.
    public static func bytes(_ text: String) -> UInt64? {
        var number = text.trimmingWhitespace
        var multiplier: Double = 1
        let suffixes: [(String, Double)] = [
            ("KiB", 0x1p10), ("MiB", 0x1p20), ("GiB", 0x1p30), ("TiB", 0x1p40),
            ("KB", 0x1p10), ("MB", 0x1p20), ("GB", 0x1p30), ("TB", 0x1p40),
            ("K", 0x1p10), ("M", 0x1p20), ("G", 0x1p30), ("T", 0x1p40), ("B", 1),
        ]
        for (suffix, value) in suffixes where number.uppercased().hasSuffix(suffix.uppercased()) {
            number = String(number.dropLast(suffix.count))
            multiplier = value
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let value = Double(number), value >= 0 else { return nil }
        let bytes = (value * multiplier).rounded()
        guard bytes < 1.8e19 else { return nil }
        return UInt64(bytes)
    }

    /// `30s`, `10m`, `1h`, `500ms`, `1h30m`, `90` (seconds). Nil if it is not a duration.
    public static func seconds(_ text: String) -> Double? {
        let trimmed = text.trimmingWhitespace
        if let plain = Double(trimmed), plain >= 0 { return plain }
        var total = 0.0
        var digits = ""
        var rest = Substring(trimmed)
        guard !rest.isEmpty else { return nil }
        while let c = rest.first {
            if c.isNumber || c == "." {
                digits.append(c)
                rest = rest.dropFirst()
                continue
            }
            let unit: Double
            if rest.hasPrefix("ms") { unit = 0.001; rest = rest.dropFirst(2) }
            else if c == "s" { unit = 1; rest = rest.dropFirst() }
            else if c == "m" { unit = 60; rest = rest.dropFirst() }
            else if c == "h" { unit = 3600; rest = rest.dropFirst() }
            else if c == "d" { unit = 86400; rest = rest.dropFirst() }
            else { return nil }
            guard let value = Double(digits) else { return nil }
            total += value * unit
            digits = ""
        }
        return digits.isEmpty ? total : nil
    }
}

import KilnRecipe

/// One gate of one stage, evaluated on its metrics.
public struct GateReport: Sendable {
    public var stage: String
    public var gate: GateExpression
    public var checks: [GateExpression.Check]
    public var passed: Bool { checks.allSatisfy(\.passed) }

    /// Evaluates every gate of `stage` (a stage without metrics is evaluated on `{}`: each key is missing).
    public static func evaluate(_ stage: Stage, metrics: JSONValue?) -> [GateReport] {
        stage.gates.map { GateReport(stage: stage.name, gate: $0, checks: $0.evaluate(metrics ?? .object([:]))) }
    }
}

/// The table a failed gate prints: one row per comparison, its value, threshold and verdict.
public enum GateTable {
    public static func render(_ reports: [GateReport]) -> String {
        var rows: [[String]] = [["stage", "gate", "value", "threshold", "result"]]
        for report in reports {
            for check in report.checks {
                let c = check.comparison
                rows.append([
                    report.stage, c.description, format(check.left), "\(c.op.rawValue) \(format(check.right))",
                    check.passed ? "pass" : "FAIL" + (check.problem.map { " (\($0))" } ?? ""),
                ])
            }
        }
        let widths = rows[0].indices.map { col in rows.map { $0[col].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func format(_ value: Double?) -> String {
        guard let value else { return "-" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }
}

import ArgumentParser
import KilnEngine
import KilnStore

extension Kiln {
    /// `kiln diff RUN_A RUN_B`: params, inputs, env, image, host, metrics and outputs that differ.
    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "diff",
            abstract: "Show what differs between two runs: params, inputs, env, image, host, metrics (with deltas) and outputs.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The first run (default: latest~1).", valueName: "run-a"))
        var a: String = "latest~1"

        @Argument(help: ArgumentHelp("The second run (default: latest).", valueName: "run-b"))
        var b: String = "latest"

        @Flag(name: .customLong("json"), help: "Print the differences as JSON.")
        var json = false

        func run() async throws {
            try await RecordSupport.main {
                let catalog = try RecordSupport.catalog(cacheOptions)
                let ra = try catalog.resolve(a), rb = try catalog.resolve(b)
                let diff = RunDiff(ra.record, rb.record)
                if json {
                    RecordSupport.printJSON(diff)
                    return
                }
                storeOutputLine(Self.render(diff, ra.id, rb.id))
            }
        }

        static func render(_ d: RunDiff, _ a: String, _ b: String) -> String {
            if d.isEmpty { return "runs \(a) and \(b) do not differ" }
            var lines = ["runs \(a) → \(b)"]
            func section(_ title: String, _ changes: [RunDiff.Change]) {
                guard !changes.isEmpty else { return }
                lines.append("\(title):")
                for c in changes {
                    lines.append("  \(c.stage.map { "\($0) " } ?? "")\(c.name): \(c.a ?? "(none)") → \(c.b ?? "(none)")")
                }
            }
            section("params", d.params)
            if d.recipeChanged { lines.append("recipe: the text differs") }
            section("stages", d.stages)
            if !d.metrics.isEmpty {
                lines.append("metrics:")
                for m in d.metrics {
                    let delta = m.delta.map { " (\($0 >= 0 ? "+" : "")\(RecordSupport.number($0)))" } ?? ""
                    lines.append("  \(m.stage) \(m.name): \(m.a.map(RecordSupport.number) ?? "(none)") → \(m.b.map(RecordSupport.number) ?? "(none)")\(delta)")
                }
            }
            section("outputs", d.outputs)
            section("inputs", d.inputs)
            section("argv", d.argv)
            section("env", d.env)
            section("image", d.image)
            section("host", d.host)
            return lines.joined(separator: "\n")
        }
    }
}

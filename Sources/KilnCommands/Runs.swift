import ArgumentParser
import KilnEngine
import KilnStore

extension Kiln {
    /// `kiln runs`: the runs the cache holds, newest first.
    struct Runs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "runs",
            abstract: "List recorded runs, newest first.",
            discussion: """
                Every `kiln run` records one run (cache hits included). A run is named by its id, a \
                unique prefix of it (4 hex digits or more), `latest`, or `latest~N` wherever a command \
                takes RUN. Runs keep every blob they name in the cache: `kiln cache gc --keep-last N` \
                drops older ones.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Option(name: .customLong("recipe"), help: ArgumentHelp("Only runs of this recipe (its name).", valueName: "name"))
        var recipe: String?

        @Option(name: .customLong("status"), help: ArgumentHelp("Only runs that ended so: succeeded, failed, gate-failed or interrupted.", valueName: "status"))
        var status: String?

        @Option(name: .customShort("n"), help: ArgumentHelp("At most this many runs.", valueName: "N"))
        var limit: Int?

        @Flag(name: .customLong("json"), help: "Print a JSON array of {id, digest, record}, each stage with its status, times and metrics (`kiln show RUN --json` prints a whole record).")
        var json = false

        func validate() throws {
            if let status, !["succeeded", "failed", "gate-failed", "interrupted"].contains(status) {
                throw ValidationError("'--status \(status)' is not a run status; use succeeded, failed, gate-failed or interrupted.")
            }
            if let limit, limit < 1 { throw ValidationError("'-n' needs at least 1; got \(limit).") }
        }

        struct Row: Encodable {
            var id: String
            var digest: String
            var record: RunRecord
        }

        func run() async throws {
            let catalog = try RecordSupport.catalog(cacheOptions)
            let all = catalog.list(details: false)
            let unreadable = catalog.ids().count - all.count
            if unreadable > 0 {
                storeErrorLine("kiln: \(unreadable) run\(unreadable == 1 ? "" : "s") in \(catalog.store.root) could not be read (a record from an older kiln, or a missing blob: `kiln cache verify` checks); not listed.")
            }
            var entries = all.filter {
                (recipe == nil || $0.record.recipe.name == recipe) && (status == nil || $0.record.status == status)
            }
            if let limit { entries = Array(entries.prefix(limit)) }
            if json {
                RecordSupport.printJSON(entries.map { Row(id: $0.id, digest: $0.digest.description, record: $0.record) })
                return
            }
            guard !entries.isEmpty else {
                storeOutputLine("no runs\(recipe.map { " of \($0)" } ?? "")\(status.map { " with status \($0)" } ?? "") in \(catalog.store.root)")
                return
            }
            var rows = [["RUN", "RECIPE", "WHEN", "TRIGGER", "STATUS", "RAN", "CACHED", "METRICS"]]
            for e in entries {
                let r = e.record
                let metrics = r.stages.compactMap { s in s.metrics.map { _ in RecordSupport.metrics(s.metrics) } }.joined(separator: " ")
                rows.append([e.id, r.recipe.name, RecordSupport.time(r.startedAt), r.trigger, r.status,
                             String(r.stages.filter { $0.status == "ran" }.count),
                             String(r.stages.filter { $0.status == "cached" }.count), metrics])
            }
            storeOutputLine(Table.render(rows))
        }
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = first.indices.map { col in rows.map { col < $0.count ? $0[col].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

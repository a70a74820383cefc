import ArgumentParser
import KilnEngine
import KilnStore

extension Kiln {
    /// `kiln show RUN [--stage S]`: a recorded run for a person, or its record as JSON.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show a recorded run: per stage, cache hit or ran, time, exit, metrics, input and output digests.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The run: an id, a unique prefix of one, latest or latest~N.", valueName: "run"))
        var runName: String = "latest"

        @Option(name: .customLong("stage"), help: ArgumentHelp("Only this stage.", valueName: "stage"))
        var stage: String?

        @Flag(name: .customLong("json"), help: "Print the run record itself (JSON).")
        var json = false

        func run() async throws {
            try await RecordSupport.main {
                let catalog = try RecordSupport.catalog(cacheOptions)
                let entry = try catalog.resolve(runName)
                var record = entry.record
                if let stage {
                    guard let s = record.stage(stage) else {
                        throw EngineError(.unknownRun, "run \(entry.id) has no stage '\(stage)'; its stages: \(record.stages.map(\.name).joined(separator: ", ")).")
                    }
                    record.stages = [s]
                }
                if json {
                    RecordSupport.printJSON(record)
                    return
                }
                storeOutputLine(Self.render(entry.id, record, catalog: catalog, header: stage == nil))
            }
        }

        static func render(_ id: String, _ r: RunRecord, catalog: RunCatalog, header: Bool) -> String {
            var lines: [String] = []
            if header {
                lines.append("run \(id)  \(r.recipe.name)  \(r.status)  \(RecordSupport.time(r.startedAt))  \(r.trigger)  \(RecordSupport.number((r.seconds * 10).rounded() / 10))s")
                var where_ = "recipe \(r.recipe.file)  image \(r.recipe.image)"
                if let git = r.git { where_ += "  git \(git.commit.prefix(12))\(git.dirty == true ? " (dirty)" : git.dirty == false ? "" : " (dirty?)")" }
                lines.append(where_)
                if !r.params.isEmpty {
                    lines.append("params " + r.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.split(separator: ":", maxSplits: 1).last ?? "")" }.joined(separator: " ")
                                 + (r.overrides.isEmpty ? "" : "  (overrides: \(r.overrides.joined(separator: " ")))"))
                }
                let h = r.host
                lines.append("host \(h.distro), \(h.kernel.split(separator: " ").prefix(2).joined(separator: " ")), \(h.arch), \(h.cpuModel), \(h.cores) cores, \(RecordSupport.bytes(h.memoryBytes)), \(h.libc), kiln \(h.kilnVersion)")
            }
            for s in r.stages {
                lines.append("")
                var head = "stage \(s.name)  \(s.status)"
                if s.status == "cached" {
                    let origin = s.cachedFrom.flatMap { catalog.id(ofInvocation: $0) }
                    head += origin.map { " (from run \($0))" } ?? ""
                }
                head += "  \(RecordSupport.number((s.seconds * 10).rounded() / 10))s"
                if let w = s.wallSeconds {
                    head += "  (ran \(RecordSupport.number((w * 10).rounded() / 10))s, cpu \(RecordSupport.number(((s.cpuSeconds ?? 0) * 10).rounded() / 10))s, peak \(RecordSupport.bytes(s.peakMemoryBytes)))"
                }
                if let e = s.exitStatus { head += "  exit \(e)" }
                lines.append(head)
                if let reason = s.reason { lines.append("  why      \(reason)") }
                if let key = s.key { lines.append("  key      \(key)") }
                if let argv = s.argv { lines.append("  command  \(argv.last ?? "")") }
                if let image = s.image { lines.append("  image    \(image.hasPrefix("host:") ? "host toolchain " + image.dropFirst(5) : image)") }
                for i in s.inputs ?? [] {
                    lines.append("  input    \(i.path)  \(i.tree.map { "tree \($0)" } ?? "archive \(i.archive!)")")
                }
                for (path, o) in (s.outputs ?? [:]).sorted(by: { $0.key < $1.key }) {
                    lines.append("  output   \(path)  \(o.archive)")
                }
                if s.metrics != nil { lines.append("  metrics  \(RecordSupport.metrics(s.metrics))") }
                for g in s.gates ?? [] {
                    lines.append("  gate     \(g.gate): \(g.passed ? "pass" : "FAIL")\(g.value.map { " (\(RecordSupport.number($0)))" } ?? "")")
                }
                if s.stdout != nil { lines.append("  logs     kiln logs \(id) \(s.name)") }
            }
            return lines.joined(separator: "\n")
        }
    }
}

import ArgumentParser
import KilnEngine
import KilnStore

extension Kiln {
    /// `kiln logs RUN STAGE`: a stage's stored output.
    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "logs",
            abstract: "Print a stage's stored stdout and stderr from a recorded run.",
            discussion: "For a cache hit, these are the logs of the run that produced the result.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The run: an id, a unique prefix of one, latest or latest~N.", valueName: "run"))
        var runName: String

        @Argument(help: ArgumentHelp("The stage.", valueName: "stage"))
        var stage: String

        @Option(name: .customLong("stream"), help: ArgumentHelp("Which stream: stdout, stderr or both (default: both, stdout first).", valueName: "stream"))
        var stream: String = "both"

        func validate() throws {
            guard ["stdout", "stderr", "both"].contains(stream) else {
                throw ValidationError("'--stream \(stream)' is not a stream; use stdout, stderr or both.")
            }
        }

        func run() async throws {
            try await RecordSupport.main {
                let catalog = try RecordSupport.catalog(cacheOptions)
                let entry = try catalog.resolve(runName)
                guard let s = entry.record.stage(stage) else {
                    throw EngineError(.unknownRun, "run \(entry.id) has no stage '\(stage)'; its stages: \(entry.record.stages.map(\.name).joined(separator: ", ")).")
                }
                guard s.stdout != nil || s.stderr != nil else {
                    throw EngineError(.unknownRun, "stage '\(stage)' of run \(entry.id) has no stored logs (it \(s.status)\(s.reason.map { ": \($0)" } ?? "")).")
                }
                if stream != "stderr", let d = s.stdout { try catalog.store.copy(d, toFileDescriptor: 1, display: "standard output") }
                if stream != "stdout", let d = s.stderr { try catalog.store.copy(d, toFileDescriptor: stream == "both" ? 1 : 2, display: "standard output") }
            }
        }
    }
}

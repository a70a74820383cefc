import ArgumentParser
import KilnEngine
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln {
    /// `kiln verify RUN|DIGEST`: is this artifact reproducible? Rebuild it N times, varied.
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check that a run's outputs (or one artifact) rebuild byte-identically, several times, varying what kiln controls.",
            discussion: """
                Like `nix-build --check` and Bazel's reproducibility checks: the stages leading to the \
                artifact are rebuilt --rounds times without the cache, each round varying what kiln \
                controls from outside the sandbox — the scratch path, the order inputs are staged, \
                input mtimes and atimes, kiln's umask and environment, and (always) process ids — and \
                every output is compared with the record. The report names the first stage whose \
                outputs diverged and the files that differ.

                TARGET is a run (id, prefix, latest) or an artifact digest (sha256:…) that a recorded \
                run produced. Exit codes as `kiln replay`.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("A run, or an artifact's digest (sha256:HEX).", valueName: "target"))
        var target: String

        @Option(name: .customLong("rounds"), help: ArgumentHelp("How many rebuilds (default 2).", valueName: "N"))
        var rounds: Int = 2

        @Flag(name: .customLong("allow-host-drift"), help: "Rebuild even when the host toolchain differs from the recorded one.")
        var allowHostDrift = false

        @Flag(name: .customLong("json"), help: "Print the rounds as JSON.")
        var json = false

        func validate() throws {
            if rounds < 1 || rounds > 100 { throw ValidationError("'--rounds' takes 1 to 100; got \(rounds).") }
        }

        func run() async throws {
            try await RecordSupport.main {
                let catalog = try RecordSupport.catalog(cacheOptions)
                let (id, record, stages) = try Self.resolve(target, catalog)
                let session = ReplaySession(store: catalog.store, allowHostDrift: allowHostDrift, json: json)
                var all: [[Replayer.StageCheck]] = []
                for round in 0..<rounds {
                    let variation = Self.variation(round)
                    setenv("KILN_VERIFY_ROUND", String(round + 1), 1)  // kiln's own environment differs per round
                    all.append(try await session.rebuild(record, stages, output: nil, variation: variation,
                                                         label: "verify round \(round + 1)/\(rounds) of run \(id)"))
                }
                try ReplaySession.finish(all, json: json, header: "verified \(stages.map(\.name).joined(separator: ", ")) of run \(id), \(rounds) round\(rounds == 1 ? "" : "s")")
            }
        }

        /// Round 1 as recorded; later rounds reverse the input order, give inputs other times,
        /// and tighten kiln's umask.
        static func variation(_ round: Int) -> Replayer.Variation {
            guard round > 0 else { return .init() }
            return .init(reverseInputOrder: round % 2 == 1, inputTime: 1_000_000_000 + Int64(round) * 86_400 * 97,
                         umask: round % 2 == 1 ? 0o077 : 0o002)
        }

        static func resolve(_ target: String, _ catalog: RunCatalog) throws -> (String, RunRecord, [RunRecord.StageRecord]) {
            if target.hasPrefix("sha256:") {
                guard let digest = Digest(target) else {
                    throw EngineError(.unknownRun, "\(target) is not a digest: write sha256: and 64 hex digits.")
                }
                for entry in catalog.list() {
                    let stages = Replayer.stages(of: entry.record, producing: digest)
                    if !stages.isEmpty { return (entry.id, entry.record, stages) }
                }
                throw EngineError(.unknownRun, "no recorded run produced \(target); `kiln show RUN` lists output digests.")
            }
            let entry = try catalog.resolve(target)
            return (entry.id, entry.record, try Replayer.stages(of: entry.record, named: []))
        }
    }
}

import ArgumentParser
import FoundationEssentials
import KilnEngine
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln {
    /// `kiln replay RUN`: rebuild a recorded run's stages from the record alone and compare.
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Rebuild a recorded run's stages from its record alone and check every output is byte-identical.",
            discussion: """
                Each stage runs in the sandbox as it did, in a fresh scratch workspace filled from the \
                cache with exactly the inputs the record names, with the recorded command, env, params \
                and limits. The action cache is neither read nor written. It works after the workspace \
                is gone, from any directory, and on another machine after `kiln import`.

                A stage that used the host toolchain (image: host) is refused when this host's \
                toolchain fingerprint differs from the recorded one, unless --allow-host-drift.

                Exit codes: 0 when every output is byte-identical; \(KilnExitCode.notReproducible) when \
                one differs (the report names the output and the files inside it; diffoscope's view is \
                added where diffoscope is installed); \(KilnExitCode.stageFailed) when a stage could not \
                be rebuilt; \(KilnExitCode.hostDrift) when the host differs; \(KilnExitCode.noSuchRun) for \
                an unknown run.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The run: an id, a unique prefix of one, latest or latest~N.", valueName: "run"))
        var runName: String

        @Option(name: .customLong("stage"), help: ArgumentHelp("Rebuild only this stage (repeatable); its inputs come from the record.", valueName: "stage"))
        var stages: [String] = []

        @Option(name: .customShort("o"), help: ArgumentHelp("Keep the rebuilt workspace in this new (or empty) folder.", valueName: "dir"))
        var output: String?

        @Flag(name: .customLong("allow-host-drift"), help: "Rebuild even when the host toolchain differs from the recorded one (reported).")
        var allowHostDrift = false

        @Flag(name: .customLong("json"), help: "Print the comparison as JSON.")
        var json = false

        func run() async throws {
            try await RecordSupport.main {
                let catalog = try RecordSupport.catalog(cacheOptions)
                let entry = try catalog.resolve(runName)
                let selected = try Replayer.stages(of: entry.record, named: stages)
                let checks = try await ReplaySession(store: catalog.store, allowHostDrift: allowHostDrift, json: json)
                    .rebuild(entry.record, selected, output: output, variation: .init(), label: "replay of run \(entry.id)")
                try ReplaySession.finish([checks], json: json)
            }
        }
    }
}

/// What replay and verify share: the host-drift check, a scratch workspace, progress lines, the
/// report and the exit code.
struct ReplaySession {
    let store: Store
    let allowHostDrift: Bool
    let json: Bool

    func rebuild(_ record: RunRecord, _ stages: [RunRecord.StageRecord], output: String?, variation: Replayer.Variation,
                 label: String) async throws -> [Replayer.StageCheck] {
        let replayer = Replayer(store: store, hostFingerprint: HostFingerprint.compute())
        let drift = replayer.hostDrift(record, stages: stages, kilnVersion: KilnVersion.string)
        if !drift.isEmpty {
            let list = drift.map { "  " + $0 }.joined(separator: "\n")
            if !allowHostDrift {
                throw EngineError(.hostDrift, "this host differs from the one that recorded the run:\n\(list)\nThe outputs may differ for that reason alone. Pass --allow-host-drift to rebuild anyway, or replay on a pinned image (image: NAME@sha256:…).")
            }
            storeErrorLine("kiln: warning: rebuilding on a different host (--allow-host-drift):\n\(list)")
        }
        let scratch: String
        var removeScratch = false
        if let output {
            scratch = RunSetup.absolute(output)
            if FileManager.default.fileExists(atPath: scratch) {
                guard ((try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? ["?"]).isEmpty else {
                    throw EngineError(.io, "-o \(output) exists and is not empty; give a new or empty folder.")
                }
            } else {
                do { try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true) } catch {
                    throw EngineError(.io, "cannot create -o \(output): \(error)")
                }
            }
        } else {
            scratch = store.tmpDirectory + "/replay.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
            do { try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true) } catch {
                throw EngineError(.io, "cannot create a scratch workspace in \(store.tmpDirectory): \(error)")
            }
            removeScratch = true
        }
        defer { if removeScratch { try? FileManager.default.removeItem(atPath: scratch) } }
        // Held shared while blobs are read and stored, so a concurrent gc waits.
        let lock = try store.holdLock(.shared)
        defer { lock.release() }
        let json = self.json
        let checks = try await replayer.replay(record, stages: stages, in: scratch, variation: variation) { stage in
            if !json { storeErrorLine("\(label): rebuilding \(stage)…") }
        }
        if let output, !json { storeErrorLine("the rebuilt workspace is in \(output)") }
        return checks
    }

    /// Prints every round's checks; throws the exit code.
    static func finish(_ rounds: [[Replayer.StageCheck]], json: Bool, header: String? = nil) throws {
        let all = rounds.flatMap { $0 }
        if json {
            struct Report: Encodable {
                var reproducible: Bool
                var rounds: [[Replayer.StageCheck]]
                var firstDivergence: String?
            }
            let first = all.first { $0.status != "identical" }?.stage
            RecordSupport.printJSON(Report(reproducible: all.allSatisfy { $0.status == "identical" }, rounds: rounds, firstDivergence: first))
        } else {
            if let header { storeOutputLine(header) }
            for (r, checks) in rounds.enumerated() {
                if rounds.count > 1 { storeOutputLine("round \(r + 1):") }
                for c in checks { storeOutputLine(render(c)) }
            }
            if let first = all.first(where: { $0.status == "differs" }) {
                storeOutputLine("not reproducible: stage '\(first.stage)' is the first whose outputs differ from the record")
            } else if let failed = all.first(where: { $0.status == "failed" }) {
                storeOutputLine("could not rebuild stage '\(failed.stage)'")
            } else {
                storeOutputLine("reproducible: every output is byte-identical to the record")
            }
        }
        if all.contains(where: { $0.status == "differs" }) { throw ExitCode(KilnExitCode.notReproducible) }
        if all.contains(where: { $0.status == "failed" }) { throw ExitCode(KilnExitCode.stageFailed) }
    }

    static func render(_ c: Replayer.StageCheck) -> String {
        let time = "(\(RecordSupport.number((c.seconds * 10).rounded() / 10))s)"
        var lines: [String] = []
        switch c.status {
        case "identical": lines.append("identical  \(c.stage)  \(time)")
        case "failed": lines.append("failed     \(c.stage)  \(time): \(c.reason ?? "")")
        default:
            lines.append("DIFFERS    \(c.stage)  \(time)")
            for o in c.outputs where !o.identical {
                lines.append("  output \(o.path): recorded \(o.recorded), rebuilt \(o.rebuilt?.description ?? "(missing)")")
                for f in o.files.prefix(20) { lines.append("    \(f.path): \(f.change)") }
                if o.files.count > 20 { lines.append("    … and \(o.files.count - 20) more files") }
                if let d = o.diffoscope, !d.isEmpty {
                    lines.append("    diffoscope:")
                    lines += d.split(separator: "\n", omittingEmptySubsequences: false).prefix(60).map { "      " + $0 }
                }
            }
        }
        for k in c.keyDrift { lines.append("  note: its key differs from the record: \(k)") }
        return lines.joined(separator: "\n")
    }
}

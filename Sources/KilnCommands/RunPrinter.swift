import FoundationEssentials
import KilnEngine
import KilnRecipe
import KilnStore

/// `kiln run`'s output: a line per finished stage and a summary, or (`--json`) one JSON object
/// per line: `started`, `finished`, `planned`, `gate` and `summary` events.
struct RunPrinter: Sendable {
    let json: Bool

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func format(_ s: Double) -> String {
        let tenths = (s * 10).rounded() / 10
        return "\(tenths)s"
    }

    struct Event: Encodable {
        var event: String
        var stage: String?
        var status: String?
        var key: String?
        var seconds: Double?
        var reason: String?
        var stderr: String?
        /// The stored logs and metrics of a stage that ran or was restored (`kiln` store blobs).
        var stdoutDigest: String?
        var stderrDigest: String?
        var metrics: JSONValue?
        var gate: String?
        var value: Double?
        var threshold: Double?
        var passed: Bool?
        var ran: Int?, cached: Int?, failed: Int?, skipped: Int?
        var savedSeconds: Double?
        var run: String?
        /// Seconds spent building and storing the run record (after the stages).
        var recordSeconds: Double?
    }

    func emit(_ e: Event) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(e) { storeOutputLine(String(decoding: data, as: UTF8.self)) }
    }

    func event(_ event: EngineEvent) {
        switch event {
        case .started(let stage, let key):
            if json { emit(Event(event: "started", stage: stage, key: key.description)) }
        case .planned(let stage, let wouldRun, let key, let reason):
            if json {
                emit(Event(event: "planned", stage: stage, status: wouldRun ? "run" : "cached", key: key?.description, reason: reason))
            } else {
                storeOutputLine("\(wouldRun ? "would run" : "cached   ")  \(stage)\(wouldRun ? "  (\(reason))" : "")")
            }
        case .finished(let o):
            if json {
                emit(Event(event: "finished", stage: o.stage, status: o.status.rawValue, key: o.key?.description,
                           seconds: o.seconds, reason: o.reason, stderr: o.stderrTail,
                           stdoutDigest: o.result?.stdout.description, stderrDigest: o.result?.stderr.description, metrics: o.metrics))
                return
            }
            switch o.status {
            case .ran, .cached:
                storeOutputLine("\(o.status == .ran ? "ran   " : "cached")  \(o.stage)  (\(Self.format(o.seconds)))")
            case .failed:
                storeOutputLine("failed  \(o.stage)  (\(Self.format(o.seconds))): \(o.reason ?? "failed")")
                if let tail = o.stderrTail, !tail.isEmpty {
                    storeOutputLine(tail.split(separator: "\n", omittingEmptySubsequences: false).map { "  \(o.stage) | \($0)" }.joined(separator: "\n"))
                }
            case .skipped:
                storeOutputLine("skipped \(o.stage): \(o.reason ?? "not run")")
            }
        }
    }

    func summary(_ s: RunSummary, seconds: Double, dryRun: Bool, runID: String? = nil, recordSeconds: Double? = nil) {
        let saved = s.outcomes.filter { $0.status == .cached }.compactMap { $0.result?.wallSeconds }.reduce(0, +)
        if json {
            for report in s.gates {
                for check in report.checks {
                    emit(Event(event: "gate", stage: report.stage, reason: check.problem, gate: check.comparison.description,
                               value: check.left, threshold: check.right, passed: check.passed))
                }
            }
            emit(Event(event: "summary", seconds: seconds, ran: s.count(.ran), cached: s.count(.cached),
                       failed: s.count(.failed), skipped: s.count(.skipped), savedSeconds: saved, run: runID, recordSeconds: recordSeconds))
            return
        }
        if dryRun {
            storeOutputLine("\(s.outcomes.count - s.count(.cached)) would run, \(s.count(.cached)) cached")
            return
        }
        storeOutputLine("\(s.outcomes.count) stages: \(s.count(.ran)) ran, \(s.count(.cached)) cached, \(s.count(.failed)) failed, \(s.count(.skipped)) skipped in \(Self.format(seconds)); the cache saved \(Self.format(saved))")
        if let runID { storeOutputLine("run \(runID) recorded: kiln show \(runID)") }
        let failedGates = s.gates.filter { !$0.passed }
        if !failedGates.isEmpty {
            storeOutputLine("gates failed:\n" + GateTable.render(s.gates.filter { g in failedGates.contains { $0.stage == g.stage } }))
        }
    }
}

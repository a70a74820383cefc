import FoundationEssentials
import KilnRecipe
import KilnStore

/// Everything needed to replay a run with no workspace (DESIGN.md, Run record): stored as one
/// JSON blob with sorted keys; `cache/runs/<id>` names it, and gc keeps every blob it names.
public struct RunRecord: Codable, Sendable, Equatable {
    public static let currentFormat = "kiln-run-1"

    public var format: String
    /// Random per invocation: a cache hit names the invocation that produced the result.
    public var invocation: String
    public var recipe: RecipeFacts
    /// Every param's resolved value (typed text, as in action keys: `double:0.25`).
    public var params: [String: String]
    /// The `-p NAME=VALUE` overrides as given, replayed through the recipe text.
    public var overrides: [String]
    /// The stages asked for on the command line (empty: all).
    public var selection: [String]
    /// `cli`, `ci`, `github-actions`, `replay`… ($KILN_TRIGGER overrides).
    public var trigger: String
    public var git: GitFacts?
    public var host: HostFacts
    /// Unix time (seconds) when the run started, and how long it took.
    public var startedAt: Double
    public var seconds: Double
    /// `succeeded`, `failed` (a stage), `gate-failed` or `interrupted`.
    public var status: String
    public var noCache: Bool
    /// In topological order.
    public var stages: [StageRecord]

    public struct RecipeFacts: Codable, Sendable, Equatable {
        public var name: String
        /// The recipe file, workspace-relative.
        public var file: String
        public var text: String
        /// `host` or `NAME@sha256:…`.
        public var image: String
    }

    public struct GitFacts: Codable, Sendable, Equatable {
        public var commit: String
        public var dirty: Bool?
    }

    public struct StageRecord: Codable, Sendable, Equatable {
        public var name: String
        /// `ran`, `cached`, `failed` or `skipped`.
        public var status: String
        public var reason: String?
        public var key: Digest?
        public var argv: [String]?
        public var env: [String: String]?
        /// `host:sha256:…` (the host fingerprint) or the image reference.
        public var image: String?
        /// The seccomp profile's version.
        public var sandbox: String?
        public var network: String?
        public var cpus: Int?
        public var memoryBytes: UInt64?
        public var timeoutSeconds: Double?
        public var params: [String: String]?
        public var inputs: [InputSource]?
        public var outputs: [String: OutputRecord]?
        public var stdout: Digest?
        public var stderr: Digest?
        public var metricsBlob: Digest?
        public var metrics: JSONValue?
        public var exitStatus: Int32?
        /// Seconds the engine spent on it in this run (restoring, for a hit).
        public var seconds: Double
        /// What running it cost when it ran (for a hit: the original run).
        public var wallSeconds: Double?
        public var cpuSeconds: Double?
        public var peakMemoryBytes: UInt64?
        /// For a hit: the invocation whose result was restored, when known.
        public var cachedFrom: String?
        public var gates: [GateRecord]?
    }

    public struct OutputRecord: Codable, Sendable, Equatable {
        public var archive: Digest
        public var tree: Digest?
        /// `file` or `dir`.
        public var kind: String
    }

    public struct GateRecord: Codable, Sendable, Equatable {
        public var gate: String
        public var value: Double?
        public var threshold: Double?
        public var passed: Bool
        public var problem: String?
    }

    public func stage(_ name: String) -> StageRecord? { stages.first { $0.name == name } }

    /// Every blob the record names (not tree digests, which are not blobs), sorted.
    public var blobs: [Digest] {
        var set = Set<Digest>()
        for s in stages {
            for i in s.inputs ?? [] { if let a = i.archive { set.insert(a) } }
            for o in (s.outputs ?? [:]).values { set.insert(o.archive) }
            for d in [s.stdout, s.stderr, s.metricsBlob] { if let d { set.insert(d) } }
        }
        if let image = Self.imageDigest(recipe.image) { set.insert(image) }
        return set.sorted { $0.hex < $1.hex }
    }

    static func imageDigest(_ reference: String) -> Digest? {
        guard !reference.hasPrefix("host"), let at = reference.lastIndex(of: "@") else { return nil }
        return Digest(String(reference[reference.index(after: at)...]))
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> RunRecord? {
        guard let r = try? JSONDecoder().decode(RunRecord.self, from: Data(bytes)), r.format == currentFormat else { return nil }
        return r
    }
}

extension RunRecord.StageRecord {
    /// The record of one stage's outcome; `cachedFrom` is resolved by the caller.
    init(_ outcome: StageOutcome, stage: Stage?, gates: [GateReport]) {
        name = outcome.stage
        status = outcome.status.rawValue
        reason = outcome.reason
        key = outcome.key
        seconds = outcome.seconds
        if let k = outcome.inputs {
            argv = k.argv
            env = k.environment
            image = k.image
            sandbox = k.sandboxProfile
            network = k.network
            cpus = k.cpus
            params = k.params
            inputs = k.sources
        }
        memoryBytes = stage?.memoryBytes
        timeoutSeconds = stage?.timeoutSeconds
        if let r = outcome.result {
            var outs: [String: RunRecord.OutputRecord] = [:]
            for (path, archive) in r.outputs {
                outs[path] = RunRecord.OutputRecord(archive: archive, tree: r.outputTrees[path], kind: r.outputKinds[path] ?? "file")
            }
            outputs = outs
            stdout = r.stdout
            stderr = r.stderr
            metricsBlob = r.metrics
            exitStatus = r.exitStatus
            wallSeconds = r.wallSeconds
            cpuSeconds = r.cpuSeconds
            peakMemoryBytes = r.peakMemoryBytes
            if outcome.status == .cached { cachedFrom = r.invocation }
        }
        metrics = outcome.metrics
        let mine = gates.filter { $0.stage == outcome.stage }.flatMap(\.checks)
        self.gates = mine.isEmpty ? nil : mine.map {
            RunRecord.GateRecord(gate: $0.comparison.description, value: $0.left, threshold: $0.right, passed: $0.passed, problem: $0.problem)
        }
    }
}

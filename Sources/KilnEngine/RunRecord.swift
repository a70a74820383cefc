import FoundationEssentials
import KilnRecipe
import KilnStore

/// Everything needed to replay a run with no workspace (DESIGN.md, Run record). In memory, one
/// value; in the store, a run blob (`kiln-run-2`) holding what is particular to the run, and per
/// stage a detail blob (`kiln-stage-1`) holding what its action determines (command, env, inputs,
/// outputs, logs, metrics), shared by every run that ran or restored that action: a no-op run of
/// 10,000 stages writes a run blob of names and digests instead of re-encoding every stage.
/// `cache/runs/<id>` names the run blob; gc keeps every blob it reaches.
public struct RunRecord: Codable, Sendable, Equatable {
    public static let currentFormat = "kiln-run-2"
    public static let stageFormat = "kiln-stage-1"

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
    /// The pinned images the stages ran on, each with its image record (name, Env, working
    /// directory), so a replay elsewhere runs on the same root with the same environment.
    public var images: [ImageUse]?

    public struct ImageUse: Codable, Sendable, Equatable {
        public var name: String?
        public var archive: Digest
        /// The image record blob (`kiln-image-1`), when the cache had one.
        public var record: Digest?
        public init(name: String?, archive: Digest, record: Digest?) {
            self.name = name
            self.archive = archive
            self.record = record
        }
    }

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
        /// The detail blob holding this stage's action-determined fields (set once stored).
        public var detail: Digest?
        /// The invocation that produced its action result (for a hit, `cachedFrom`).
        public var producedBy: String?

        init(name: String, status: String, reason: String? = nil, key: Digest? = nil, argv: [String]? = nil,
             env: [String: String]? = nil, image: String? = nil, sandbox: String? = nil, network: String? = nil,
             cpus: Int? = nil, memoryBytes: UInt64? = nil, timeoutSeconds: Double? = nil, params: [String: String]? = nil,
             inputs: [InputSource]? = nil, outputs: [String: OutputRecord]? = nil, stdout: Digest? = nil,
             stderr: Digest? = nil, metricsBlob: Digest? = nil, metrics: JSONValue? = nil, exitStatus: Int32? = nil,
             seconds: Double, wallSeconds: Double? = nil, cpuSeconds: Double? = nil, peakMemoryBytes: UInt64? = nil,
             cachedFrom: String? = nil, gates: [GateRecord]? = nil, detail: Digest? = nil, producedBy: String? = nil) {
            self.name = name; self.status = status; self.reason = reason; self.key = key; self.argv = argv
            self.env = env; self.image = image; self.sandbox = sandbox; self.network = network; self.cpus = cpus
            self.memoryBytes = memoryBytes; self.timeoutSeconds = timeoutSeconds; self.params = params
            self.inputs = inputs; self.outputs = outputs; self.stdout = stdout; self.stderr = stderr
            self.metricsBlob = metricsBlob; self.metrics = metrics; self.exitStatus = exitStatus; self.seconds = seconds
            self.wallSeconds = wallSeconds; self.cpuSeconds = cpuSeconds; self.peakMemoryBytes = peakMemoryBytes
            self.cachedFrom = cachedFrom; self.gates = gates; self.detail = detail; self.producedBy = producedBy
        }
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
            for d in [s.stdout, s.stderr, s.metricsBlob, s.detail] { if let d { set.insert(d) } }
        }
        if let image = Self.imageDigest(recipe.image) { set.insert(image) }
        for s in stages { if let image = s.image.flatMap(Self.imageDigest) { set.insert(image) } }
        for i in images ?? [] {
            set.insert(i.archive)
            if let r = i.record { set.insert(r) }
        }
        return set.sorted { $0.hex < $1.hex }
    }

    /// The archive digest in an image reference (`NAME@sha256:…` or `sha256:…`); nil for host.
    static func imageDigest(_ reference: String) -> Digest? {
        if reference.hasPrefix("host") { return nil }
        guard let at = reference.lastIndex(of: "@") else { return Digest(reference) }
        return Digest(String(reference[reference.index(after: at)...]))
    }

    /// The run blob's bytes; every stage with key inputs must have its `detail` stored first
    /// (`RunCatalog.add` does it).
    public func encoded() -> [UInt8] {
        var head = self
        head.format = Self.currentFormat
        head.stages = []
        var bytes = Self.json(head)
        // The stages are written by hand (JSONEncoder took 9 µs a stage) and spliced in where the
        // empty array is: with sorted keys the top-level `"stages":[]` occurs once, and a quote
        // inside a string value is always escaped, so the pattern cannot occur in one.
        let marker = Array(#""stages":[]"#.utf8)
        guard let at = bytes.indices.dropLast(marker.count - 1).first(where: { bytes[$0..<($0 + marker.count)].elementsEqual(marker) }) else {
            var file = head
            file.stages = stages.map { $0.runPart }
            return Self.json(file)
        }
        var list: [UInt8] = Array(#""stages":["#.utf8)
        for (i, stage) in stages.enumerated() {
            if i > 0 { list.append(UInt8(ascii: ",")) }
            list += stage.runPartJSON
        }
        list.append(UInt8(ascii: "]"))
        bytes.replaceSubrange(at..<(at + marker.count), with: list)
        return bytes
    }

    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data())
    }

    /// A run blob alone: stages without their details (see `RunCatalog.list(details:)`).
    public static func decodeRunPart(_ bytes: [UInt8]) -> RunRecord? {
        guard let r = try? JSONDecoder().decode(RunRecord.self, from: Data(bytes)), r.format == currentFormat else { return nil }
        return r
    }

    static func decodeDetail(_ bytes: [UInt8]) -> StageDetail? {
        guard let d = try? JSONDecoder().decode(StageDetail.self, from: Data(bytes)), d.format == stageFormat else { return nil }
        return d
    }

    /// A run blob with its stages' details read through `blob` (the store, or a staged bundle).
    /// Nil when it is not a `kiln-run-2` record or a detail is missing or malformed.
    public static func decode(_ bytes: [UInt8], blob: (Digest) -> [UInt8]?) -> RunRecord? {
        guard var r = try? JSONDecoder().decode(RunRecord.self, from: Data(bytes)), r.format == currentFormat else { return nil }
        for i in r.stages.indices {
            guard let d = r.stages[i].detail else { continue }
            guard let detailBytes = blob(d),
                  let detail = try? JSONDecoder().decode(StageDetail.self, from: Data(detailBytes)),
                  detail.format == stageFormat else { return nil }
            r.stages[i].merge(detail)
        }
        return r
    }
}

/// What a stage's action determines (a function of its key and its action result), stored once
/// per action and named by every run record that ran or restored it.
struct StageDetail: Codable {
    var format: String
    var key: Digest?
    var argv: [String]?
    var env: [String: String]?
    var image: String?
    var sandbox: String?
    var network: String?
    var cpus: Int?
    var params: [String: String]?
    var inputs: [InputSource]?
    var outputs: [String: RunRecord.OutputRecord]?
    var stdout: Digest?
    var stderr: Digest?
    var metricsBlob: Digest?
    var metrics: JSONValue?
    var exitStatus: Int32?
    var wallSeconds: Double?
    var cpuSeconds: Double?
    var peakMemoryBytes: UInt64?
    /// The invocation that produced the action result.
    var producedBy: String?
}

extension RunRecord.StageRecord {
    /// The detail blob's content for this stage.
    var detailPart: StageDetail {
        StageDetail(format: RunRecord.stageFormat, key: key, argv: argv, env: env, image: image, sandbox: sandbox,
                    network: network, cpus: cpus, params: params, inputs: inputs, outputs: outputs, stdout: stdout,
                    stderr: stderr, metricsBlob: metricsBlob, metrics: metrics, exitStatus: exitStatus,
                    wallSeconds: wallSeconds, cpuSeconds: cpuSeconds, peakMemoryBytes: peakMemoryBytes, producedBy: producedBy)
    }

    /// What the run blob keeps of a stage: the detail's fields left out when a detail names them.
    var runPart: RunRecord.StageRecord {
        guard detail != nil else { return self }
        // Metrics stay here too (small), so a listing of runs needs no detail.
        return RunRecord.StageRecord(name: name, status: status, reason: reason, memoryBytes: memoryBytes,
                                     timeoutSeconds: timeoutSeconds, metrics: metrics, seconds: seconds,
                                     cachedFrom: cachedFrom, gates: gates, detail: detail)
    }

    /// `runPart` as JSON: by hand for the usual stage (a detail, no gates), else JSONEncoder.
    var runPartJSON: [UInt8] {
        guard let detail, gates == nil, metrics == nil, seconds.isFinite, timeoutSeconds?.isFinite ?? true else { return RunRecord.json(runPart) }
        var out: [UInt8] = [UInt8(ascii: "{")]
        func key(_ k: String) {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            CanonicalJSON.writeString(k, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        // Keys in sorted order, as JSONEncoder's .sortedKeys writes them.
        if let cachedFrom { key("cachedFrom"); CanonicalJSON.writeString(cachedFrom, to: &out) }
        key("detail"); CanonicalJSON.writeString(detail.description, to: &out)
        if let memoryBytes { key("memoryBytes"); out += Array(String(memoryBytes).utf8) }
        key("name"); CanonicalJSON.writeString(name, to: &out)
        if let reason { key("reason"); CanonicalJSON.writeString(reason, to: &out) }
        key("seconds"); out += Array(String(seconds).utf8)
        key("status"); CanonicalJSON.writeString(status, to: &out)
        if let timeoutSeconds { key("timeoutSeconds"); out += Array(String(timeoutSeconds).utf8) }
        out.append(UInt8(ascii: "}"))
        return out
    }

    mutating func merge(_ d: StageDetail) {
        key = d.key; argv = d.argv; env = d.env; image = d.image; sandbox = d.sandbox; network = d.network
        cpus = d.cpus; params = d.params; inputs = d.inputs; outputs = d.outputs; stdout = d.stdout
        stderr = d.stderr; metricsBlob = d.metricsBlob; metrics = d.metrics; exitStatus = d.exitStatus
        wallSeconds = d.wallSeconds; cpuSeconds = d.cpuSeconds; peakMemoryBytes = d.peakMemoryBytes
        producedBy = d.producedBy
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
            producedBy = r.invocation
            if outcome.status == .cached { cachedFrom = r.invocation }
            detail = r.detail
        }
        metrics = outcome.metrics
        let mine = gates.filter { $0.stage == outcome.stage }.flatMap(\.checks)
        self.gates = mine.isEmpty ? nil : mine.map {
            RunRecord.GateRecord(gate: $0.comparison.description, value: $0.left, threshold: $0.right, passed: $0.passed, problem: $0.problem)
        }
    }
}

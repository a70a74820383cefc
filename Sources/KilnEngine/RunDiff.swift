import KilnRecipe
import KilnStore

/// What differs between two runs: params, the recipe, host facts, and per stage its env, argv,
/// image, inputs by path, outputs and metrics (with deltas) — `dvc params diff`, `metrics diff`
/// and `exp diff` in one. Every list is sorted, so the output is stable.
public struct RunDiff: Sendable, Encodable {
    /// One changed value; nil on a side where it is absent.
    public struct Change: Sendable, Encodable, Equatable {
        /// The stage it belongs to (nil for run-wide facts).
        public var stage: String?
        public var name: String
        public var a: String?
        public var b: String?
    }

    public struct MetricChange: Sendable, Encodable, Equatable {
        public var stage: String
        public var name: String
        public var a: Double?
        public var b: Double?
        public var delta: Double? { a.flatMap { a in b.map { $0 - a } } }

        enum CodingKeys: String, CodingKey { case stage, name, a, b, delta }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(stage, forKey: .stage)
            try c.encode(name, forKey: .name)
            try c.encodeIfPresent(a, forKey: .a)
            try c.encodeIfPresent(b, forKey: .b)
            try c.encodeIfPresent(delta, forKey: .delta)
        }
    }

    public var params: [Change] = []
    public var recipeChanged = false
    public var host: [Change] = []
    /// Stages in only one of the runs, or whose status differs.
    public var stages: [Change] = []
    public var env: [Change] = []
    public var argv: [Change] = []
    public var image: [Change] = []
    public var inputs: [Change] = []
    public var outputs: [Change] = []
    public var metrics: [MetricChange] = []

    public var isEmpty: Bool {
        params.isEmpty && !recipeChanged && host.isEmpty && stages.isEmpty && env.isEmpty && argv.isEmpty
            && image.isEmpty && inputs.isEmpty && outputs.isEmpty && metrics.isEmpty
    }

    public init(_ a: RunRecord, _ b: RunRecord) {
        params = Self.compare(a.params, b.params, stage: nil)
        recipeChanged = a.recipe.text != b.recipe.text
        host = Self.compare(Self.facts(a.host), Self.facts(b.host), stage: nil)
        let names = Set(a.stages.map(\.name)).union(b.stages.map(\.name)).sorted()
        for name in names {
            let sa = a.stage(name), sb = b.stage(name)
            if sa?.status != sb?.status { stages.append(Change(stage: name, name: "status", a: sa?.status, b: sb?.status)) }
            guard let sa, let sb else { continue }
            env += Self.compare(sa.env ?? [:], sb.env ?? [:], stage: name)
            if sa.argv != sb.argv {
                argv.append(Change(stage: name, name: "argv", a: sa.argv?.joined(separator: " "), b: sb.argv?.joined(separator: " ")))
            }
            if sa.image != sb.image { image.append(Change(stage: name, name: "image", a: sa.image, b: sb.image)) }
            inputs += Self.compare(Self.inputDigests(sa), Self.inputDigests(sb), stage: name)
            outputs += Self.compare((sa.outputs ?? [:]).mapValues(\.archive.description), (sb.outputs ?? [:]).mapValues(\.archive.description), stage: name)
            let ma = Self.flatten(sa.metrics), mb = Self.flatten(sb.metrics)
            for key in Set(ma.keys).union(mb.keys).sorted() where ma[key] != mb[key] {
                metrics.append(MetricChange(stage: name, name: key, a: ma[key], b: mb[key]))
            }
        }
    }

    /// An input's identity: its tree digest (workspace files) or archive (upstream outputs).
    static func inputDigests(_ s: RunRecord.StageRecord) -> [String: String] {
        var out: [String: String] = [:]
        for i in s.inputs ?? [] { out[i.path] = (i.tree ?? i.archive)?.description ?? "?" }
        return out
    }

    static func facts(_ h: HostFacts) -> [String: String] {
        ["kernel": h.kernel, "arch": h.arch, "cpuModel": h.cpuModel, "cpuFlags": h.cpuFlags, "cores": String(h.cores),
         "memoryBytes": String(h.memoryBytes), "libc": h.libc, "distro": h.distro, "kilnVersion": h.kilnVersion,
         "fingerprint": h.fingerprint.description]
    }

    static func compare(_ a: [String: String], _ b: [String: String], stage: String?) -> [Change] {
        Set(a.keys).union(b.keys).sorted().compactMap { k in
            a[k] == b[k] ? nil : Change(stage: stage, name: k, a: a[k], b: b[k])
        }
    }

    /// Numeric leaves of a metrics value under dotted keys (booleans as 1 and 0).
    public static func flatten(_ value: JSONValue?, prefix: String = "") -> [String: Double] {
        guard let value else { return [:] }
        switch value {
        case .number(let n): return [prefix: n]
        case .bool(let b): return [prefix: b ? 1 : 0]
        case .object(let o):
            var out: [String: Double] = [:]
            for (k, v) in o { out.merge(flatten(v, prefix: prefix.isEmpty ? k : prefix + "." + k)) { a, _ in a } }
            return out
        default: return [:]
        }
    }
}

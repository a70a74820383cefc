import FoundationEssentials
import KilnRecipe
import KilnStore

/// What the action cache holds for a key (`ac/ab/<key>`, JSON with sorted keys): enough to restore
/// the stage without running it. Every digest names a blob in the CAS, so gc keeps them.
public struct ActionResult: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var stage: String
    /// Declared output (as written, `data/`) → archive digest.
    public var outputs: [String: Digest]
    /// Declared output → tree digest (TreeHasher) of what was archived: an unchanged workspace
    /// copy is not extracted again.
    public var outputTrees: [String: Digest]
    /// Declared output → `file` or `dir`: what the stage created (a file's archive holds one
    /// entry named by its base name, a directory's its contents).
    public var outputKinds: [String: String]
    public var exitStatus: Int32
    public var stdout: Digest
    public var stderr: Digest
    /// The metrics file's bytes, when the stage declares `metrics:`.
    public var metrics: Digest?
    public var wallSeconds: Double
    public var cpuSeconds: Double
    public var peakMemoryBytes: UInt64
    /// The run invocation that produced it (`RunRecord.invocation`), so a hit can name its origin.
    public var invocation: String?
    /// The run records' detail blob for this action (`RunRecord`, `kiln-stage-1`), stored with it
    /// so a run that restores the action names it without encoding it again.
    public var detail: Digest?

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> ActionResult? {
        if let fast = fastDecode(bytes) { return fast }
        guard let r = try? JSONDecoder().decode(ActionResult.self, from: Data(bytes)), r.version == currentVersion else { return nil }
        return r
    }

    /// The hot path of a no-op run: FastJSON, then the fields by hand; nil for anything unusual
    /// (the caller falls back to JSONDecoder, which then decides).
    static func fastDecode(_ bytes: [UInt8]) -> ActionResult? {
        guard case .object(let o)? = FastJSON.parse(bytes) else { return nil }
        func string(_ k: String) -> String? { if case .string(let s)? = o[k] { return s } else { return nil } }
        func number(_ k: String) -> Double? { if case .number(let n)? = o[k] { return n } else { return nil } }
        func digest(_ k: String) -> Digest? { string(k).flatMap(Digest.init) }
        func digests(_ k: String) -> [String: Digest]? {
            guard case .object(let m)? = o[k] else { return nil }
            var out: [String: Digest] = [:]
            for (key, v) in m {
                guard case .string(let s) = v, let d = Digest(s) else { return nil }
                out[key] = d
            }
            return out
        }
        guard number("version") == Double(currentVersion), let stage = string("stage"), let outputs = digests("outputs"),
              let trees = digests("outputTrees"), case .object(let kindValues)? = o["outputKinds"],
              let exit = number("exitStatus"), let stdout = digest("stdout"), let stderr = digest("stderr"),
              let wall = number("wallSeconds"), let cpu = number("cpuSeconds"), let peak = number("peakMemoryBytes"),
              peak >= 0, peak < 1.8e19, exit >= Double(Int32.min), exit <= Double(Int32.max) else { return nil }
        var kinds: [String: String] = [:]
        for (k, v) in kindValues {
            guard case .string(let s) = v else { return nil }
            kinds[k] = s
        }
        if o["metrics"] != nil && digest("metrics") == nil { return nil }
        if o["detail"] != nil && digest("detail") == nil { return nil }
        return ActionResult(version: currentVersion, stage: stage, outputs: outputs, outputTrees: trees, outputKinds: kinds,
                            exitStatus: Int32(exit), stdout: stdout, stderr: stderr, metrics: digest("metrics"),
                            wallSeconds: wall, cpuSeconds: cpu, peakMemoryBytes: UInt64(peak), invocation: string("invocation"),
                            detail: digest("detail"))
    }
}

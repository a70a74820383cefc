import FoundationEssentials
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
        guard let r = try? JSONDecoder().decode(ActionResult.self, from: Data(bytes)), r.version == currentVersion else { return nil }
        return r
    }
}

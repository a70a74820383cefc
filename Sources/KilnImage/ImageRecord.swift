import FoundationEssentials
import KilnStore

/// The small JSON blob stored beside an image's archive and named by `refs/images/NAME`: what the
/// archive is (its digest keeps it alive through gc) and the defaults the image's config gave.
///
/// ```json
/// {"archive":"sha256:…","createdFrom":"oci-layout","entries":1234,"env":["PATH=…"],
///  "format":"kiln-image-1","name":"debian","size":123456,"source":"/abs/path","workingDir":"/"}
/// ```
/// Keys sorted, no spaces. The image's identity is the archive's digest alone: the record may
/// change (another name, another source) without changing what a stage sees, except `env` and
/// `workingDir`, which the engine folds into each stage's environment and key.
public struct ImageRecord: Codable, Sendable, Equatable {
    public static let currentFormat = "kiln-image-1"

    public var format: String
    public var name: String
    /// The image archive's digest, `sha256:HEX`: the image's identity.
    public var archive: Digest
    /// Bytes of the archive.
    public var size: Int64
    /// Entries (files, directories, symlinks) in the archive.
    public var entries: Int
    /// The config's `Env` (`KEY=VALUE`), in its order; empty when the source had no config.
    public var env: [String]
    /// The config's `WorkingDir`, if any.
    public var workingDir: String?
    /// Where it was imported from, as given (a path).
    public var source: String
    /// What kind of source: `directory`, `tar`, `oci-layout`, `docker-archive`, `mmdebstrap`.
    public var createdFrom: String

    public init(name: String, archive: Digest, size: Int64, entries: Int, env: [String], workingDir: String?, source: String, createdFrom: String) {
        self.format = Self.currentFormat
        self.name = name
        self.archive = archive
        self.size = size
        self.entries = entries
        self.env = env
        self.workingDir = workingDir
        self.source = source
        self.createdFrom = createdFrom
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> ImageRecord? {
        guard let record = try? JSONDecoder().decode(ImageRecord.self, from: Data(bytes)), record.format == currentFormat else { return nil }
        return record
    }

    /// `env` as a dictionary (a later duplicate wins).
    public var environment: [String: String] {
        var out: [String: String] = [:]
        for item in env {
            guard let eq = item.firstIndex(of: "=") else { continue }
            out[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        return out
    }
}

import ArgumentParser
import FoundationEssentials
import KilnImage
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln {
    /// `kiln image …`: pinned root filesystems for the sandbox, named by digest.
    struct Image: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Import, build, list, inspect and remove images (root filesystems pinned by digest).",
            discussion: """
                An image is a root filesystem stored in the cache as one deterministic archive; its \
                reference is NAME@sha256:HEX, the archive's digest, so the same content always gives the \
                same reference. Recipes pin one with `image: NAME@sha256:HEX`; `kiln sandbox run --image REF` \
                runs a command on one.
                """,
            subcommands: [Import.self, Build.self, Lock.self, List.self, Inspect.self, Remove.self])
    }
}

/// Opens the cache for the image commands (created when missing).
func imageStore(_ options: CacheOptions) throws(StoreError) -> ImageStore {
    ImageStore(store: try Store(root: options.location.path))
}

/// Prints `value` as one line of sorted-key JSON on standard output.
func printJSONLine(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard var data = try? encoder.encode(value) else { return }
    data.append(UInt8(ascii: "\n"))
    data.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

/// What `ls --json` and `inspect --json` say about an image.
struct ImageJSON: Encodable {
    var reference: String
    var name: String?
    var digest: String
    var record: String?
    var size: Int64?
    var entries: Int?
    var env: [String]?
    var workingDir: String?
    var source: String?
    var createdFrom: String?
    var extracted: Bool
    var packages: [DebianPackages.Package]?

    init(_ image: ResolvedImage, store: Store, packages: [DebianPackages.Package]? = nil) {
        reference = image.reference
        name = image.name
        digest = image.digest.description
        record = image.recordDigest?.description
        size = image.record?.size
        entries = image.record?.entries
        env = image.record?.env
        workingDir = image.record?.workingDir
        source = image.record?.source
        createdFrom = image.record?.createdFrom
        var st = stat()
        extracted = stat(store.imagesDirectory + "/" + image.digest.hex, &st) == 0
        self.packages = packages
    }
}

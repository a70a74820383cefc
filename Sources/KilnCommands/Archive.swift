import ArgumentParser
import KilnStore

extension Kiln {
    /// `kiln archive PATH -o FILE.tar`: a deterministic tar of a file or directory.
    struct Archive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "archive",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Pack a file or directory into a deterministic tar archive.",
            discussion: """
                The same content gives the same bytes whatever the mtimes, owners, umask, creation order \
                or hardlinks: pax restricted format, entries in canonical order (each directory before its \
                contents, siblings sorted by name bytes), mtime = SOURCE_DATE_EPOCH (0 by default), \
                uid/gid 0 without names, modes 0644/0755 by the owner-execute bit and 0755 for \
                directories, no atime/ctime/xattrs/ACLs, hardlinks stored as files. Symlinks stay \
                symlinks and empty directories are kept; sockets, fifos and devices are refused.

                A directory's entries are named relative to it; a file's entry is its base name. GNU tar \
                and bsdtar list and extract the result.
                """)

        @Argument(help: ArgumentHelp("The file or directory to pack.", valueName: "path"))
        var path: String

        @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("Where to write the archive.", valueName: "file.tar"))
        var output: String?

        @Flag(name: .customLong("store"), help: "Store the archive in the cache (see --cache) instead of, or as well as, writing it with -o.")
        var store = false

        @Flag(name: .customLong("digest"), help: "Print the archive's digest ('sha256:HEX  FILE') after writing it with -o.")
        var printDigest = false

        @Option(
            name: .customLong("source-date-epoch"),
            help: ArgumentHelp("The mtime of every entry, in seconds since 1970 (default: $SOURCE_DATE_EPOCH, else 0).", valueName: "seconds"))
        var sourceDateEpoch: Int64?

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        func validate() throws {
            if output == nil && !store {
                throw ValidationError("Say where the archive goes: '-o FILE.tar', '--store' (into the cache), or both.")
            }
            if let sourceDateEpoch, sourceDateEpoch < 0 {
                throw ValidationError("'--source-date-epoch' must be ≥ 0; got \(sourceDateEpoch).")
            }
            if output == "" { throw ValidationError("'-o' needs a file name.") }
        }

        func run() async throws {
            let epoch = try sourceDateEpoch ?? sourceDateEpochFromEnvironment() ?? 0
            try storeMain {
                let writer = ArchiveWriter(sourceDateEpoch: epoch)
                if let output {
                    let summary = try writer.create(source: path, output: output, computeDigest: printDigest)
                    if let d = summary.digest { storeOutputLine("\(d)  \(output)") }
                }
                if store {
                    let cache = try Store(root: cacheOptions.location.path)
                    let summary = try cache.withLock(.shared) { () throws(StoreError) in try writer.store(source: path, in: cache) }
                    storeOutputLine("\(summary.digest!)  \(path)")
                }
            }
        }
    }
}

import ArgumentParser
import KilnStore

extension Kiln {
    /// `kiln extract FILE.tar -C DIR`: safe extraction of (possibly hostile) tar archives.
    struct Extract: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "extract",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Extract a tar archive safely into a new directory.",
            discussion: """
                Refuses, naming the entry: absolute names, '..' components, entries written through \
                symlinks, symlinks or hardlinks pointing outside DIR, a directory later replaced by a \
                symlink (any duplicate entry), devices, fifos and sockets. Strips setuid, setgid and \
                sticky bits. Extracts into a staging directory beside DIR and renames it into place, so a \
                refused archive leaves nothing behind: DIR must not exist, or be an empty directory.

                ARCHIVE may also be a digest (sha256:HEX) of a blob in the cache; it is verified while read.
                """)

        @Argument(help: ArgumentHelp("The tar file (plain, gzip, bzip2, xz or zstd), or sha256:HEX of a cached blob.", valueName: "archive"))
        var archive: String

        @Option(name: [.customShort("C"), .customLong("directory")], help: ArgumentHelp("The directory to create.", valueName: "dir"))
        var directory: String

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        func validate() throws {
            if directory.isEmpty { throw ValidationError("'-C' needs a directory.") }
        }

        func run() async throws {
            try storeMain {
                let extractor = SafeExtractor()
                let summary: ExtractSummary
                if archive.hasPrefix(Digest.prefix) {
                    let d = try Digest(parsing: archive, what: "archive digest")
                    guard let store = try Store.existing(root: cacheOptions.location.path) else {
                        throw StoreError(.notFound, "there is no cache at \(cacheOptions.location.path) to take \(d) from; give --cache DIR.")
                    }
                    summary = try extractor.extract(blob: d, from: store, to: directory)
                } else {
                    summary = try extractor.extract(archive: archive, to: directory)
                }
                storeErrorLine("extracted \(summary.entries) entries (\(summary.bytes) bytes) to \(directory)")
            }
        }
    }
}

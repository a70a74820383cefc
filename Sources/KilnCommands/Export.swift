import ArgumentParser
import KilnEngine
import KilnStore

extension Kiln {
    /// `kiln export RUN -o FILE`: one self-contained bundle of a run.
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write a run and every blob it needs (inputs, outputs, logs, image) to one deterministic bundle.",
            discussion: """
                The bundle is a tar file: kiln-bundle.json (the manifest) then blobs/sha256/HEX, every \
                entry with fixed owner, mode and time, so the same run always gives the same bytes. \
                `kiln import FILE` on another machine, then `kiln replay RUN`, rebuilds it there.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The run: an id, a unique prefix of one, latest or latest~N.", valueName: "run"))
        var runName: String

        @Option(name: .customShort("o"), help: ArgumentHelp("The bundle file to write.", valueName: "file"))
        var output: String

        func run() async throws {
            try await RecordSupport.main {
                let catalog = try RecordSupport.catalog(cacheOptions)
                let entry = try catalog.resolve(runName)
                let (blobs, bytes) = try catalog.export(entry, to: RunSetup.absolute(output))
                storeOutputLine("exported run \(entry.id) to \(output): \(blobs) blobs, \(RecordSupport.bytes(UInt64(bytes)))")
            }
        }
    }

    /// `kiln import FILE`: add a bundle's run and blobs to the cache, every digest checked first.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Add a bundle's run and blobs to the cache; every digest is checked before anything enters it.",
            discussion: """
                A tampered, truncated or incomplete bundle (a flipped byte, a missing blob, a record \
                naming a blob the bundle lacks) is refused, naming what is wrong, and the cache is left \
                as it was. Exit codes: \(KilnExitCode.dataError) when refused, \(KilnExitCode.ioError) \
                for I/O errors (a full disk).
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The bundle (from kiln export).", valueName: "file"))
        var file: String

        func run() async throws {
            try await RecordSupport.main {
                let store = try Store(root: cacheOptions.location.path)
                let (id, blobs, new) = try RunCatalog(store: store).importBundle(RunSetup.absolute(file))
                storeOutputLine("imported run \(id): \(blobs) blobs (\(new) new); replay it with: kiln replay \(id)")
            }
        }
    }
}

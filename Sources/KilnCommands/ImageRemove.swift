import ArgumentParser
import KilnImage
import KilnStore

extension Kiln.Image {
    /// `kiln image rm REF`
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm",
            abstract: "Remove an image's names and extracted tree (its blobs go at the next `kiln cache gc`).",
            discussion: "Refused (exit 1) while a kept run record names the image's digest, since that run could no longer be replayed; --force removes it anyway (gc still keeps the blobs such a run names).")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("NAME@sha256:HEX, sha256:HEX or NAME.", valueName: "ref"))
        var reference: String

        @Flag(name: .customLong("force"), help: "Remove it even while kept runs name it.")
        var force = false

        func run() async throws {
            try storeMain {
                let images = try imageStore(cacheOptions)
                let image = try images.resolve(reference)
                let runs = images.runsUsing(image)
                if !runs.isEmpty && !force {
                    storeErrorLine("kiln: \(ImageStore.inUse(image, runs: runs))")
                    throw ExitCode.failure
                }
                let names = try images.remove(image, force: true) { storeErrorLine("kiln: \($0)") }
                storeOutputLine("removed \(image.digest)\(names.isEmpty ? "" : " (\(names.joined(separator: ", ")))")\(runs.isEmpty ? "" : "; still named by \(runs.count) run(s)")")
            }
        }
    }
}

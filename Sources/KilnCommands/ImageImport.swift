import ArgumentParser
import KilnImage
import KilnStore

extension Kiln.Image {
    /// `kiln image import SOURCE --name NAME`
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Import a root filesystem as an image and print its reference (NAME@sha256:HEX).",
            discussion: """
                SOURCE is a directory holding a root filesystem; a tar archive of one (gzip, bzip2, xz or \
                zstd compressed or not); an OCI image layout directory (as `skopeo copy docker://IMAGE \
                oci:DIR` writes) or a tar of one; or a `docker save` archive. Layers are applied in order \
                with their whiteouts; the config's Env and WorkingDir become the image's defaults. Owners, \
                times and the order files were written in do not change the digest; setuid bits, device \
                nodes, fifos and sockets are left out.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("A directory, tar archive, OCI layout or docker archive.", valueName: "source"))
        var source: String

        @Option(name: .customLong("name"), help: ArgumentHelp("The image's name (lowercase letters, digits, . _ - / :).", valueName: "name"))
        var name: String

        @Flag(name: .customLong("json"), help: "Print the image as JSON.")
        var json = false

        func validate() throws {
            do throws(StoreError) { try ImageStore.checkName(name) } catch { throw ValidationError("'--name \(name)': \(error.message)") }
        }

        func run() async throws {
            try storeMain {
                let images = try imageStore(cacheOptions)
                let image = try images.importImage(from: RunSetup.absolute(source), name: name) { line in
                    if !json { storeErrorLine("kiln: \(line)") }
                }
                if json {
                    printJSONLine(ImageJSON(image, store: images.store))
                } else {
                    storeOutputLine(image.reference)
                }
            }
        }
    }
}

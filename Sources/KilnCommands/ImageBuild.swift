import ArgumentParser
import KilnImage
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln.Image {
    /// `kiln image build --name NAME --from debian:bookworm --packages a,b`
    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "build",
            abstract: "Build a Debian image with mmdebstrap and import it; prints its reference.",
            discussion: """
                Runs `mmdebstrap --variant=minbase --include=PACKAGES SUITE OUT.tar [MIRROR]` into the \
                cache's tmp/ (its progress on standard error), then imports the result as `kiln image \
                import` does. The digest pins what was built: building again later gives a new digest \
                whenever the mirror's packages changed. Needs mmdebstrap (apt-get install mmdebstrap) and \
                the mirror; run as root, or where unprivileged user namespaces work.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Option(name: .customLong("name"), help: ArgumentHelp("The image's name.", valueName: "name"))
        var name: String

        @Option(name: .customLong("from"), help: ArgumentHelp("The base: debian:SUITE, like debian:bookworm.", valueName: "base"))
        var from: String = "debian:bookworm"

        @Option(name: .customLong("packages"), help: ArgumentHelp("Packages to install, comma-separated.", valueName: "a,b,…"))
        var packages: String = ""

        @Option(name: .customLong("mirror"), help: ArgumentHelp("The Debian mirror (default: mmdebstrap's, deb.debian.org).", valueName: "url"))
        var mirror: String?

        @Flag(name: .customLong("json"), help: "Print the image as JSON.")
        var json = false

        var suite: String? {
            guard from.hasPrefix("debian:") else { return nil }
            let suite = String(from.dropFirst(7))
            return suite.isEmpty || suite.contains("/") ? nil : suite
        }

        var packageList: [String] { packages.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } }

        func validate() throws {
            do throws(StoreError) { try ImageStore.checkName(name) } catch { throw ValidationError("'--name \(name)': \(error.message)") }
            if suite == nil { throw ValidationError("'--from \(from)' is not debian:SUITE; write it like --from debian:bookworm.") }
            for p in packageList where !p.allSatisfy({ $0.isLetter || $0.isNumber || "+-.:=~".contains($0) }) {
                throw ValidationError("'--packages': '\(p)' is not a Debian package name.")
            }
        }

        func run() async throws {
            try storeMain {
                let images = try imageStore(cacheOptions)
                let image = try DebianImageBuilder.build(images, name: name, suite: suite!, packages: packageList, mirror: mirror)
                if json { printJSONLine(ImageJSON(image, store: images.store)) } else { storeOutputLine(image.reference) }
            }
        }
    }
}

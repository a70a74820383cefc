import ArgumentParser
import KilnImage
import KilnStore

extension Kiln.Image {
    /// `kiln image inspect REF`
    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inspect",
            abstract: "Show an image: digest, size, files, source, defaults and its Debian packages.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("NAME@sha256:HEX, sha256:HEX or NAME.", valueName: "ref"))
        var reference: String

        @Flag(name: .customLong("json"), help: "Print the image as one JSON object.")
        var json = false

        func run() async throws {
            try storeMain {
                let images = try imageStore(cacheOptions)
                let image = try images.resolve(reference)
                // The package list needs the tree: extracting it now makes the first run faster too.
                let packages = DebianPackages.installed(inTree: try images.root(of: image))
                let info = ImageJSON(image, store: images.store, packages: packages)
                if json {
                    printJSONLine(info)
                    return
                }
                storeOutputLine("reference:    \(info.reference)")
                storeOutputLine("digest:       \(info.digest)")
                if let size = info.size { storeOutputLine("size:         \(humanBytes(size)) (\(size) bytes)") }
                if let entries = info.entries { storeOutputLine("files:        \(entries) (files, directories and symlinks)") }
                if let source = info.source { storeOutputLine("source:       \(source)") }
                if let from = info.createdFrom { storeOutputLine("created from: \(from)") }
                if let record = info.record { storeOutputLine("record:       \(record)") }
                if let env = info.env, !env.isEmpty { storeOutputLine("env:          \(env.joined(separator: " "))") }
                if let dir = info.workingDir { storeOutputLine("working dir:  \(dir)") }
                if let packages {
                    storeOutputLine("packages:     \(packages.count) Debian packages")
                    for p in packages { storeOutputLine("  \(p.name) \(p.version)") }
                } else {
                    storeOutputLine("packages:     none known (no var/lib/dpkg/status)")
                }
            }
        }
    }
}

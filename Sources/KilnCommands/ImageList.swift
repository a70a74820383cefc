import ArgumentParser
import KilnImage
import KilnStore

extension Kiln.Image {
    /// `kiln image ls`
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the images in the cache.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Flag(name: .customLong("json"), help: "Print one JSON object per image, one per line.")
        var json = false

        func run() async throws {
            try storeMain {
                let images = try imageStore(cacheOptions)
                let all = images.list()
                if json {
                    for image in all { printJSONLine(ImageJSON(image, store: images.store)) }
                    return
                }
                if all.isEmpty {
                    storeErrorLine("kiln: no images in \(images.store.root); import one with `kiln image import SOURCE --name NAME`.")
                    return
                }
                for image in all {
                    let size = image.record.map { humanBytes($0.size) } ?? "?"
                    storeOutputLine("\(image.reference)  \(size)  \(image.record?.createdFrom ?? "")")
                }
            }
        }
    }
}

import ArgumentParser
import KilnStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Kiln {
    /// `kiln cache …`: inspect and maintain the content-addressed cache.
    struct Cache: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect, verify and clean the cache.",
            subcommands: [Put.self, Cat.self])
    }
}

extension Kiln.Cache {
    /// `kiln cache put FILE...`: store files as blobs (plumbing, like `git hash-object -w`).
    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store files as blobs and print their digests.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("Files to store.", valueName: "file"))
        var files: [String]

        func run() async throws {
            try storeMain {
                let store = try Store(root: cacheOptions.location.path)
                try store.withLock(.shared) { () throws(StoreError) in
                    for file in files {
                        let d = try store.put(file: file)
                        storeOutputLine("\(d)  \(file)")
                    }
                }
            }
        }
    }

    /// `kiln cache cat DIGEST`: write a verified blob to standard output.
    struct Cat: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a blob to standard output, verified first (a corrupt blob is never written).")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Argument(help: ArgumentHelp("The blob's digest.", valueName: "sha256:hex"))
        var digest: String

        func run() async throws {
            try storeMain {
                let d = try Digest(parsing: digest)
                guard let store = try Store.existing(root: cacheOptions.location.path) else {
                    throw StoreError(.notFound, "there is no cache at \(cacheOptions.location.path); give --cache DIR or set KILN_CACHE.")
                }
                try store.copy(d, toFileDescriptor: 1, display: "standard output")
            }
        }
    }
}

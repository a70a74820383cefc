import ArgumentParser
import KilnStore

extension Kiln {
    /// `kiln hash PATH...`: file and directory digests, like `sha256sum` for trees.
    struct Hash: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hash",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Print the digest of files and directories.",
            discussion: """
                Prints 'sha256:HEX  PATH' per path. A file's digest is the SHA-256 of its bytes; a \
                directory's is the SHA-256 of its canonical listing (names, kinds, executable bits, sizes, \
                digests and symlink targets; see KilnStore's TreeHasher), so it does not depend on \
                mtimes, owners or the directory's own name. A symlink given as PATH is followed; symlinks \
                inside a directory are not.

                Unchanged files cost one stat: digests are remembered in the cache's statcache (when the \
                cache is given by --cache or KILN_CACHE, belongs to a workspace, or ./cache exists). \
                Large trees are hashed on all cores.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Flag(name: .customLong("no-stat-cache"), help: "Hash every file; do not read or update the stat cache.")
        var noStatCache = false

        @Argument(help: ArgumentHelp("Files or directories to hash.", valueName: "path"))
        var paths: [String]

        func validate() throws {
            if paths.isEmpty { throw ValidationError("Give at least one PATH to hash.") }
        }

        func run() async throws {
            try storeMain {
                let location = cacheOptions.location
                var store: Store?
                if !noStatCache {
                    // The stat cache only saves time: a cache that cannot be opened is reported, not fatal.
                    do {
                        store = location.source != .currentDirectory
                            ? try Store(root: location.path) : try Store.existing(root: location.path)
                    } catch let e as StoreError {
                        storeErrorLine("kiln: warning: hashing without the stat cache: \(e.message)")
                    }
                }
                let cache = StatCache(path: store?.statCachePath)
                var failed: StoreError?
                for path in paths {
                    do {
                        let (digest, _) = try TreeHasher.digest(of: path, cache: cache)
                        storeOutputLine("\(digest)  \(path)")
                    } catch let e as StoreError {
                        storeErrorLine("kiln: \(e.message)")
                        failed = failed ?? e
                    }
                }
                if let store { try? cache.save(tmpDirectory: store.tmpDirectory) }
                if let failed { throw ExitCode(storeExitCode(for: failed)) }
            }
        }
    }
}

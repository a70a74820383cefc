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
            commandName: "cache",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Inspect, verify and clean the cache.",
            subcommands: [Stats.self, Verify.self, GC.self, Put.self, Cat.self])
    }
}

extension Kiln.Cache {
    /// `kiln cache put FILE...`: store files as blobs (plumbing, like `git hash-object -w`).
    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "put", abstract: "Store files as blobs and print their digests.")

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
        static let configuration = CommandConfiguration(commandName: "cat", 
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

/// The cache at --cache/KILN_CACHE/the workspace, which must exist.
private func existingStore(_ options: CacheOptions) throws -> Store {
    let location = options.location
    guard let store = try Store.existing(root: location.path) else {
        throw StoreError(.notFound, "there is no cache at \(location.path); give --cache DIR or set KILN_CACHE.")
    }
    return store
}

/// `1.5 GiB`.
func humanBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024 && i < units.count - 1 {
        v /= 1024
        i += 1
    }
    if i == 0 { return "\(n) B" }
    let tenths = Int((v * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[i])"
}

extension Kiln.Cache {
    /// `kiln cache stats`: entries and bytes by kind.
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show the cache's entries and bytes, by kind.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        func run() async throws {
            try storeMain {
                let store = try existingStore(cacheOptions)
                let s = try store.stats()
                func line(_ label: String, _ c: StoreStats.Count) -> String {
                    let padded = label + String(repeating: " ", count: max(0, 22 - label.count))
                    return "\(padded)\(c.count)\t\(humanBytes(c.bytes))\t(\(c.bytes) bytes)"
                }
                storeOutputLine("cache \(store.root)")
                storeOutputLine(line("blobs", s.totalBlobs))
                for kind in ["archive", "json", "other"] {
                    storeOutputLine(line("  \(kind)", s.blobs[kind] ?? .init()))
                }
                storeOutputLine(line("action results", s.actionResults))
                storeOutputLine(line("runs", s.runs))
                storeOutputLine(line("refs", s.refs))
                storeOutputLine(line("quarantined", s.quarantined))
                storeOutputLine(line("tmp", s.temporary))
                storeOutputLine(line("stat cache", s.statCache))
            }
        }
    }

    /// `kiln cache verify`: rehash every blob; quarantine the corrupt ones.
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "verify", 
            abstract: "Rehash every blob; move corrupt ones to quarantine/ and exit non-zero if there were any.",
            discussion: "Exit status: 0 when every blob matched its digest, \(KilnExitCode.dataError) when some did not.")

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        func run() async throws {
            try storeMain {
                let store = try existingStore(cacheOptions)
                let report = try store.verifyAll()
                for c in report.corrupt {
                    storeErrorLine("kiln: corrupt blob \(c.digest): its bytes hash to \(c.actual); moved to \(c.movedTo)")
                }
                for s in report.strays {
                    storeErrorLine("kiln: warning: \(s) is not a blob (not named by its digest); left alone")
                }
                storeOutputLine("verified \(report.checked) blobs (\(humanBytes(report.bytes))): \(report.corrupt.count) corrupt")
                if !report.corrupt.isEmpty { throw ExitCode(KilnExitCode.dataError) }
            }
        }
    }

    /// `kiln cache gc`: delete what no kept record or ref reaches.
    struct GC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Delete blobs that no kept run, action result or ref reaches.",
            discussion: """
                Roots are refs (always kept), runs and action results. --keep-last N keeps the N newest runs; \
                --older-than drops runs (other than those N) and action results older than the duration; \
                --max-size then drops the oldest remaining runs and action results until the rest fits. \
                A blob is kept when a kept root names it, directly or through JSON blobs (records) that \
                name it. Runs with the cache locked: other kiln processes wait.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Option(name: .customLong("keep-last"), help: ArgumentHelp("Keep the N newest runs whatever their age.", valueName: "n"))
        var keepLast: Int?

        @Option(name: .customLong("older-than"), help: ArgumentHelp("Drop runs and action results older than this (e.g. 30d, 12h).", valueName: "duration"))
        var olderThan: String?

        @Option(name: .customLong("max-size"), help: ArgumentHelp("Drop the oldest runs and action results until the cache fits (e.g. 20G).", valueName: "size"))
        var maxSize: String?

        @Flag(name: .customLong("dry-run"), help: "Say what would be deleted; delete nothing.")
        var dryRun = false

        func validate() throws {
            if let keepLast, keepLast < 0 { throw ValidationError("'--keep-last' must be ≥ 0; got \(keepLast).") }
            do {
                if let olderThan { _ = try GCPolicy.parseDuration(olderThan) }
                if let maxSize { _ = try GCPolicy.parseSize(maxSize) }
            } catch {
                throw ValidationError(error.message)
            }
        }

        func run() async throws {
            try storeMain {
                let store = try existingStore(cacheOptions)
                let policy = GCPolicy(
                    keepLast: keepLast, olderThan: try olderThan.map(GCPolicy.parseDuration),
                    maxSize: try maxSize.map(GCPolicy.parseSize), dryRun: dryRun)
                let report = try store.collectGarbage(policy)
                let verb = dryRun ? "would delete" : "deleted"
                for r in report.removedRuns { storeOutputLine("\(verb) run \(r)") }
                for a in report.removedActionResults { storeOutputLine("\(verb) action result \(a)") }
                for b in report.removedBlobs { storeOutputLine("\(verb) blob \(b.digest) (\(humanBytes(b.size)))") }
                storeOutputLine(
                    "\(dryRun ? "would free" : "freed") \(humanBytes(report.freedBytes)) in \(report.removedBlobs.count) blobs; kept \(report.keptBlobs) blobs (\(humanBytes(report.keptBytes)))")
            }
        }
    }
}

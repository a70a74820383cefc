#if canImport(Glibc)
import Glibc
#endif
import KilnStore

/// An image found in the cache: its digest (the identity), and its record and name when it has one.
public struct ResolvedImage: Sendable, Equatable {
    public var name: String?
    public var digest: Digest
    public var record: ImageRecord?
    /// The record blob's digest (what `refs/images/NAME` holds).
    public var recordDigest: Digest?

    public init(name: String?, digest: Digest, record: ImageRecord?, recordDigest: Digest?) {
        self.name = name
        self.digest = digest
        self.record = record
        self.recordDigest = recordDigest
    }

    /// `NAME@sha256:HEX`, or `sha256:HEX` without a name.
    public var reference: String { name.map { "\($0)@\(digest)" } ?? digest.description }
}

/// Images in a store (DESIGN.md, Images): an image is one deterministic archive of a root
/// filesystem (`ArchiveWriter`'s format), named `NAME@sha256:HEX` by that archive's digest; an image
/// record (JSON, `ImageRecord`) beside it holds the config's defaults and is what
/// `refs/images/NAME` names, so gc keeps both; `images/<hex>/` is the extracted tree, made on first
/// use.
public struct ImageStore: Sendable {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    /// Image names: lowercase letters, digits and `. _ - / :` (as recipes accept), parts not
    /// empty or starting with a dot.
    public static func checkName(_ name: String) throws(StoreError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-/:".utf8)
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.utf8.allSatisfy(allowed.contains), !parts.contains(where: { $0.isEmpty || $0.hasPrefix(".") }) else {
            throw StoreError(.invalidArgument, "'\(name)' is not a valid image name: use lowercase letters, digits and . _ - / :, like debian or team/base:12.")
        }
    }

    /// `refs/images/…` for a name (`:` is not allowed in ref paths; `+` is not allowed in names).
    static func refName(_ name: String) -> String {
        "images/" + name.replacingColons()
    }

    // MARK: Import

    /// Imports `source` (see `ImageSource.recognise`) as `name`: its root tree is packed into one
    /// deterministic archive, stored with its record, and `refs/images/NAME` set to the record.
    /// `createdFrom` and `describedAs` replace what the record says about the source (for images
    /// kiln builds itself, whose source is a temporary file).
    public func importImage(from source: String, name: String, createdFrom: String? = nil, describedAs: String? = nil,
                            progress: (String) -> Void = { _ in }) throws(StoreError) -> ResolvedImage {
        try Self.checkName(name)
        let staging = try store.makeStagingDirectory(prefix: "image-import")
        defer { staging.remove() }
        let opened = try ImageSource.recognise(source, staging: staging.path)
        let tree: String
        switch opened.content {
        case .directory(let path):
            tree = path
        case .layers(let layers):
            tree = staging.path + "/root"
            guard mkdir(tree, 0o755) == 0 else {
                throw StoreError(.io, "cannot create the staging folder \(tree): errno \(errno).")
            }
            var applier = LayerApplier(root: tree)
            for (i, layer) in layers.enumerated() {
                progress("applying layer \(i + 1)/\(layers.count): \(layer)")
                try applier.apply(archive: layer, shown: layer)
            }
            if applier.summary.skipped > 0 {
                progress("left out \(applier.summary.skipped) device node(s), fifo(s) or socket(s): kiln builds /dev itself")
            }
        }
        progress("packing \(tree) into a deterministic archive")
        return try store.withLock(.shared) { () throws(StoreError) -> ResolvedImage in
            let summary = try ArchiveWriter(skipsSpecialFiles: true).store(source: tree, in: store)
            let record = ImageRecord(
                name: name, archive: summary.digest!, size: summary.bytes, entries: summary.entries,
                env: opened.env, workingDir: opened.workingDir, source: describedAs ?? source, createdFrom: createdFrom ?? opened.kind)
            let recordDigest = try store.put(bytes: record.encoded())
            if let previous = try? store.ref(Self.refName(name)), let bytes = try? store.read(previous),
               let old = ImageRecord.decode(bytes), old.archive != record.archive {
                progress("\(name) now names \(record.archive) instead of \(old.archive) (kiln cache gc removes the old one once nothing names it)")
            }
            try store.setRef(Self.refName(name), to: recordDigest)
            return ResolvedImage(name: name, digest: record.archive, record: record, recordDigest: recordDigest)
        }
    }

    // MARK: Lookup

    /// Every named image (one per `refs/images/NAME`), sorted by name.
    public func list() -> [ResolvedImage] {
        var out: [ResolvedImage] = []
        for ref in store.refNames(under: "images") {
            guard let recordDigest = try? store.ref("images/" + ref), let bytes = try? store.read(recordDigest),
                  let record = ImageRecord.decode(bytes) else { continue }
            out.append(ResolvedImage(name: record.name, digest: record.archive, record: record, recordDigest: recordDigest))
        }
        return out.sorted { ($0.name ?? "") < ($1.name ?? "") }
    }

    /// Finds `text`: `NAME@sha256:HEX`, `sha256:HEX`, or a NAME known to the cache. The archive must
    /// be in the cache; its record is found by name, else by digest among the named images.
    public func resolve(_ text: String) throws(StoreError) -> ResolvedImage {
        if let at = text.firstIndex(of: "@") {
            let name = String(text[..<at])
            let digestText = String(text[text.index(after: at)...])
            try Self.checkName(name)
            guard let d = Digest(digestText) else {
                throw StoreError(.invalidArgument, "'\(digestText)' in the image reference '\(text)' is not a digest: write NAME@sha256: and 64 hex digits.")
            }
            return try resolve(name: name, digest: d)
        }
        if text.hasPrefix(Digest.prefix) {
            guard let d = Digest(text) else {
                throw StoreError(.invalidArgument, "'\(text)' is not a digest: write sha256: and 64 hex digits.")
            }
            return try resolve(name: nil, digest: d)
        }
        try Self.checkName(text)
        guard let recordDigest = try store.ref(Self.refName(text)) else {
            let known = list().compactMap(\.name)
            throw StoreError(.notFound, "no image named '\(text)' in the cache at \(store.root)\(known.isEmpty ? "" : " (it has: \(known.joined(separator: ", ")))"): import one with `kiln image import SOURCE --name \(text)`.")
        }
        let bytes = try store.read(recordDigest)
        guard let record = ImageRecord.decode(bytes) else {
            throw StoreError(.corrupt, "refs/\(Self.refName(text)) names \(recordDigest), which is not an image record: import the image again.")
        }
        guard store.contains(record.archive) else {
            throw StoreError(.notFound, "image '\(text)' names the archive \(record.archive), which is not in the cache at \(store.root): import it again with `kiln image import SOURCE --name \(text)`.")
        }
        return ResolvedImage(name: record.name, digest: record.archive, record: record, recordDigest: recordDigest)
    }

    /// The image with archive `digest`; `name` (when given) picks its record first.
    public func resolve(name: String?, digest: Digest) throws(StoreError) -> ResolvedImage {
        guard store.contains(digest) else {
            let shown = name.map { "\($0)@\(digest)" } ?? digest.description
            throw StoreError(.notFound, "image \(shown) is not in the cache at \(store.root): import it with `kiln image import SOURCE --name \(name ?? "NAME")` (the same content gives the same digest), or bring it with `kiln import BUNDLE`.")
        }
        let candidates = list().filter { $0.digest == digest }
        if let match = candidates.first(where: { $0.name == name }) ?? candidates.first {
            return ResolvedImage(name: name ?? match.name, digest: digest, record: match.record, recordDigest: match.recordDigest)
        }
        return ResolvedImage(name: name, digest: digest, record: nil, recordDigest: nil)
    }

    /// The extracted root of `image`, extracting it on first use.
    public func root(of image: ResolvedImage) throws(StoreError) -> String {
        try store.imageRoot(image.digest)
    }

    /// The extracted root of `image` held for a sandbox until `release()` (see `Store.useImageRoot`).
    public func use(_ image: ResolvedImage) throws(StoreError) -> ImageRootUse {
        try store.useImageRoot(image.digest)
    }

    // MARK: Removal

    /// Why `image` may not be removed while `runs` name it.
    public static func inUse(_ image: ResolvedImage, runs: [String]) -> String {
        let shown = runs.prefix(5).joined(separator: ", ") + (runs.count > 5 ? " and \(runs.count - 5) more" : "")
        return "image \(image.reference) is used by the kept run\(runs.count == 1 ? "" : "s") \(shown): removing it would make \(runs.count == 1 ? "that run" : "those runs") impossible to replay. Drop the runs first (`kiln cache gc --keep-last N`), or pass --force."
    }

    /// The runs whose kept record names the image's archive.
    public func runsUsing(_ image: ResolvedImage) -> [String] {
        store.runsNaming(image.digest)
    }

    /// Removes every name of the image (`refs/images/NAME` whose record names its archive) and its
    /// extracted tree; the archive and record blobs, named by nothing then, go at the next
    /// `kiln cache gc` (which keeps them while a kept run names them). Refused while a kept run
    /// record names the digest, unless `force`. Returns the names removed.
    public func remove(_ image: ResolvedImage, force: Bool, progress: (String) -> Void = { _ in }) throws(StoreError) -> [String] {
        let runs = runsUsing(image)
        if !runs.isEmpty && !force { throw StoreError(.invalidArgument, Self.inUse(image, runs: runs)) }
        var removed: [String] = []
        for named in list() where named.digest == image.digest {
            if let name = named.name {
                try store.deleteRef(Self.refName(name))
                removed.append(name)
            }
        }
        if !store.removeImageRoot(image.digest) {
            progress("its extracted tree is in use by a running sandbox and stays; kiln cache gc removes it later")
        }
        return removed
    }
}

extension String {
    func replacingColons() -> String {
        String(map { $0 == ":" ? "+" : $0 })
    }
}

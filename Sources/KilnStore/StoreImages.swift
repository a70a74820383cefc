#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CArchive
import SystemPackage

/// A private folder in the store's `tmp/`, locked (flock) for its whole life so that another
/// kiln's `tmp/` cleaning leaves it alone; a crash leaves it for that cleaning.
public final class StagingDirectory {
    public let path: String
    private var fd: Int32

    init(in tmp: String, prefix: String) throws(StoreError) {
        let path = Sys.join(tmp, "\(prefix).\(getpid()).\(Sys.randomSuffix())")
        try Sys.call("create staging directory", path) { mkdir(path, 0o700) }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = flock(fd, LOCK_EX | LOCK_NB) }
        self.path = path
    }

    /// Removes the folder and what is left in it.
    public func remove() {
        if fd >= 0 { Sys.close(fd) }
        fd = -1
        Sys.removeTree(path)
    }

    deinit { remove() }
}

/// An extracted image tree in use (`Store.useImageRoot`); `release()` (or deinit) ends the use.
public final class ImageRootUse: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    public func release() {
        if fd >= 0 { Sys.close(fd) }
        fd = -1
    }

    deinit { release() }
}

/// Image trees: `images/<hex>/` holds the extracted root filesystem of the image archive blob
/// `sha256:<hex>` (derived state: safe to delete, rebuilt from the blob on next use);
/// `images/<hex>.lock` is held shared by every sandbox running on it.
extension Store {
    public var imagesDirectory: String { Sys.join(root, "images") }

    /// The /etc files kiln binds its own over (KilnSandbox's image root): an extracted image with
    /// an `etc` directory gets empty ones where they are missing, so they can be mount points.
    public static let imageMountPointFiles = ["passwd", "group", "hosts", "hostname", "nsswitch.conf"]

    public func makeStagingDirectory(prefix: String) throws(StoreError) -> StagingDirectory {
        try StagingDirectory(in: tmpDirectory, prefix: prefix)
    }

    /// The extracted tree of image archive `d`, extracted now if it is not there yet.
    ///
    /// Extraction goes to a locked staging folder in `tmp/` (verifying the blob's digest on the
    /// way), the mount-point files are added, and the folder is renamed to `images/<hex>` in one
    /// step: another process sees no tree or a whole one. When two processes extract at once, the
    /// first rename wins and the other drops its copy.
    public func imageRoot(_ d: Digest) throws(StoreError) -> String {
        let target = Sys.join(imagesDirectory, d.hex)
        if Sys.isDirectory(target) { return target }
        guard contains(d) else {
            throw StoreError(.notFound, "image \(d) is not in the cache at \(root): import it with `kiln image import SOURCE --name NAME`, or bring it with `kiln import BUNDLE`.")
        }
        try Sys.makeDirectories(imagesDirectory)
        let staging = try makeStagingDirectory(prefix: "image-extract")
        defer { staging.remove() }
        let tree = Sys.join(staging.path, "root")
        _ = try SafeExtractor(keepsAnySymlink: true).extract(blob: d, from: self, to: tree)
        try Self.addMountPoints(tree)
        switch Sys.attempt({ rename(tree, target) }) {
        case .success: Sys.fsyncDirectory(imagesDirectory)
        case .failure(let e) where (e == .directoryNotEmpty || e == .fileExists) && Sys.isDirectory(target): break
        case .failure(let e): throw StoreError.system("rename \(tree) to", target, e)
        }
        return target
    }

    /// Directories the sandbox mounts on when an image's tree is its root.
    public static let imageMountPointDirectories = ["proc", "dev", "tmp", "work", "etc"]

    /// Adds what the sandbox mounts on to an extracted tree, so the tree itself can be bound as the
    /// sandbox's root (KilnSandbox's `ImageRoot`): empty `proc`, `dev`, `tmp`, `work` and `etc`
    /// directories and the empty /etc files of `imageMountPointFiles`, where missing. A symlink or
    /// file in their place is replaced (kiln's mount covers the place anyway).
    static func addMountPoints(_ tree: String) throws(StoreError) {
        for name in imageMountPointDirectories {
            let path = Sys.join(tree, name)
            if case .success(let st) = Sys.lstat(path) {
                if st.st_mode & S_IFMT == S_IFDIR { continue }
                Sys.removeTree(path)
            }
            try Sys.call("create directory", path) { mkdir(path, 0o755) }
        }
        let etc = Sys.join(tree, "etc")
        for name in imageMountPointFiles {
            let path = Sys.join(etc, name)
            if case .success(let f) = Sys.lstat(path) {
                if f.st_mode & S_IFMT == S_IFREG { continue }
                Sys.removeTree(path)
            }
            let fd = try Sys.call("create", path) { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644) }
            Sys.close(fd)
        }
    }

    /// Uses the extracted tree of image `d` (extracting it if needed) until `release()`: a shared
    /// lock on `images/<hex>.lock` that `removeImageRoot` respects, so a tree is never deleted
    /// under a running sandbox. The lock is taken before the tree is looked at.
    public func useImageRoot(_ d: Digest) throws(StoreError) -> ImageRootUse {
        try Sys.makeDirectories(imagesDirectory)
        let lock = Sys.join(imagesDirectory, d.hex + ".lock")
        let fd = try Sys.call("open", lock) { open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644) }
        _ = flock(fd, LOCK_SH)
        do throws(StoreError) {
            return ImageRootUse(path: try imageRoot(d), fd: fd)
        } catch {
            Sys.close(fd)
            throw error
        }
    }

    /// Removes the extracted tree of image `d` (renamed into `tmp/` first, so nobody sees half of
    /// it), unless a sandbox is using it (`useImageRoot`): then it stays, and false is returned.
    @discardableResult
    public func removeImageRoot(_ d: Digest) -> Bool {
        let target = Sys.join(imagesDirectory, d.hex)
        guard Sys.isDirectory(target) else { return true }
        let lock = Sys.join(imagesDirectory, d.hex + ".lock")
        let fd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        defer { if fd >= 0 { Sys.close(fd) } }
        guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        let doomed = Sys.join(tmpDirectory, "image-rm.\(getpid()).\(Sys.randomSuffix())")
        if rename(target, doomed) == 0 { Sys.removeTree(doomed) }
        return true
    }

    /// Removes extracted trees whose archive blob is gone (gc deleted it): they are derived from it.
    func pruneImageRoots() {
        let names = (try? Sys.listDirectory(imagesDirectory)) ?? []
        // Trees first, then the locks they leave unused.
        for name in names.filter({ !$0.hasSuffix(".lock") }) + names.filter({ $0.hasSuffix(".lock") }) {
            if name.hasSuffix(".lock") {
                // A lock whose archive and tree are gone: nobody can use that image any more.
                guard let d = Digest(hex: name.dropLast(5)), !contains(d), !Sys.isDirectory(Sys.join(imagesDirectory, d.hex)) else { continue }
                let path = Sys.join(imagesDirectory, name)
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                if fd >= 0 {
                    if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
                    Sys.close(fd)
                }
                continue
            }
            guard let d = Digest(hex: name), !contains(d) else { continue }
            removeImageRoot(d)
        }
    }

    /// The names of the refs under `refs/<prefix>/` (relative to it), sorted.
    public func refNames(under prefix: String) -> [String] {
        files(under: Sys.join(refsDirectory, prefix)).map(\.name).sorted()
    }

    /// The run ids (`runs/<id>`) whose record blob names `d` (as `sha256:HEX`), sorted.
    public func runsNaming(_ d: Digest) -> [String] {
        var found: [String] = []
        for f in files(under: runsDirectory) {
            guard let bytes = try? readSmall(Sys.join(runsDirectory, f.name)) else { continue }
            for record in Store.digests(in: bytes) {
                if record == d { found.append(f.name); break }
                if let content = try? read(record), Store.digests(in: content).contains(d) {
                    found.append(f.name)
                    break
                }
            }
        }
        return found.sorted()
    }
}

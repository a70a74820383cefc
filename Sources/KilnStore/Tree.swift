#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization
// `struct stat` is owned by CArchive once it is imported anywhere (archive.h includes sys/stat.h).
import CArchive
import SystemPackage

/// The kinds of file kiln hashes and archives. Anything else (sockets, fifos, devices) is refused.
public enum FileKind: UInt8, Sendable {
    case file, directory, symlink
}

/// One entry of a scanned tree, in canonical order (see `TreeScan`).
struct TreeEntry {
    /// Path relative to the scanned root, `/`-separated, no leading `./`.
    var path: [UInt8]
    /// Where the entry's own name starts in `path`.
    var nameStart: Int
    var kind: FileKind
    /// The owner's execute bit (`S_IXUSR`), as git records it. Only meaningful for files.
    var executable: Bool
    /// Bytes of a file; the target's length for a symlink; 0 for a directory.
    var size: Int64
    /// Index of the parent directory's entry, or −1 for the root's own children.
    var parent: Int
    /// The symlink's target bytes.
    var target: [UInt8]
    var stat: StatKey
    /// The file's content digest, or the directory's digest once computed.
    var digest: Digest?

    var name: ArraySlice<UInt8> { path[nameStart...] }
}

/// What the hash cache keys a file by (DESIGN.md: device, inode, size, mtime ns, ctime ns).
struct StatKey: Hashable {
    var dev: UInt64
    var ino: UInt64
    var size: Int64
    var mtime: Int64
    var ctime: Int64

    init(_ st: stat) {
        dev = UInt64(st.st_dev)
        ino = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtime = Sys.nanos(st.st_mtim)
        ctime = Sys.nanos(st.st_ctim)
    }

    init(dev: UInt64, ino: UInt64, size: Int64, mtime: Int64, ctime: Int64) {
        (self.dev, self.ino, self.size, self.mtime, self.ctime) = (dev, ino, size, mtime, ctime)
    }
}

/// A directory tree read in kiln's canonical order.
///
/// **Canonical order** (archives and directory digests both use it): a depth-first pre-order walk in
/// which the entries of each directory are sorted by their name's bytes (unsigned, shorter prefix
/// first) and a directory's entry comes immediately before its contents. So `a/` and everything
/// under it precede `a.txt` (names `a` < `a.txt`), and every directory precedes its files. The root
/// itself has no entry.
struct TreeScan {
    let root: String
    var entries: [TreeEntry] = []

    /// Scans the directory `root` (following a symlink given as the root itself, never below it).
    init(root: String) throws(StoreError) {
        self.root = root
        let fd = try Sys.call("open directory", root) { open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        try scan(fd, prefix: [], parent: -1)
    }

    private mutating func scan(_ dirfd: Int32, prefix: [UInt8], parent: Int) throws(StoreError) {
        let shown = display(prefix.isEmpty ? Array(root.utf8) : Array(root.utf8) + [47] + prefix)
        var names = try Sys.listDirectory(fd: dirfd, path: shown)
        names.sort { $0.name.lexicographicallyPrecedes($1.name) }
        for (name, _) in names {
            let path = prefix.isEmpty ? name : prefix + [47] + name
            var st = Glibc.stat()
            let cname = name + [0]
            try Sys.call("stat", self.display(path)) {
                cname.withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { fstatat(dirfd, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
                }
            }
            var entry = TreeEntry(
                path: path, nameStart: path.count - name.count, kind: .file, executable: false, size: 0,
                parent: parent, target: [], stat: StatKey(st), digest: nil)
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                entry.executable = st.st_mode & S_IXUSR != 0
                entry.size = Int64(st.st_size)
                entries.append(entry)
            case S_IFLNK:
                entry.kind = .symlink
                entry.target = try Sys.readLink(dirfd, cname, shown: display(path))
                entry.size = Int64(entry.target.count)
                entries.append(entry)
            case S_IFDIR:
                entry.kind = .directory
                entries.append(entry)
                let index = entries.count - 1
                let child = try Sys.call("open directory", self.display(path)) {
                    cname.withUnsafeBufferPointer { p in
                        p.withMemoryRebound(to: CChar.self) {
                            openat(dirfd, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        }
                    }
                }
                defer { Sys.close(child) }
                try scan(child, prefix: path, parent: index)
            default:
                throw StoreError(
                    .unsupportedFileType,
                    "\(self.display(path)) is \(Self.kindName(st.st_mode)): kiln only hashes and archives regular files, directories and symlinks. Remove it or move it out of the tree.")
            }
        }
    }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFSOCK: return "a socket"
        case S_IFIFO: return "a fifo (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        default: return "a file of an unknown type"
        }
    }

    /// `root/path` for messages.
    func display(_ path: [UInt8]) -> String {
        Sys.join(root, KilnStore.display(path))
    }

    /// `root/path` as NUL-terminated bytes for system calls.
    func cPath(_ path: [UInt8]) -> [UInt8] {
        var p = Array(root.utf8)
        if p.last != 47 { p.append(47) }
        return p + path + [0]
    }
}

/// File and directory digests (DESIGN.md, Identity).
///
/// A **file's digest** is the SHA-256 of its bytes.
///
/// A **directory's digest** is the SHA-256 of this listing, byte for byte (encoding version 1; it
/// must never change silently, since every cached action key depends on it):
///
/// ```
/// listing = "kiln-dir-v1\n" *entry
/// entry   = kind SP exec SP size SP ref NUL name NUL
/// kind    = "file" / "dir" / "link"
/// exec    = "x" / "-"        ; "x" when a file's owner-execute bit is set; always "-" for dir and link
/// size    = 1*DIGIT          ; decimal, no leading zeros: file bytes; target length for a link; "0" for a dir
/// ref     = "sha256:" 64HEXDIG-lowercase   ; file: digest of its bytes; dir: its own digest (recursive)
///         / target                         ; link: the target's bytes as readlink(2) returns them
/// name    = the entry's name bytes (no "/", no NUL)
/// ```
///
/// Entries appear in the canonical order of `TreeScan` restricted to one directory: sorted by name
/// bytes. Only the immediate children are listed; subdirectories contribute their digest. Owners,
/// times, permissions other than the execute bit, hardlink counts, xattrs and the directory's own name
/// are not part of it. An empty directory's digest is the SHA-256 of `kiln-dir-v1\n`.
///
/// When the path given is itself a symlink it is followed (like `sha256sum`); symlinks inside a tree are not.
public enum TreeHasher {
    /// Files larger than this are read in chunks of this size.
    static let chunk = 1 << 20

    /// The digest of a file or directory and its kind. `cache` (optional) skips unchanged files.
    public static func digest(of path: String, cache: StatCache? = nil) throws(StoreError) -> (digest: Digest, kind: FileKind) {
        let st: stat
        switch Sys.stat(path) {
        case .success(let s): st = s
        case .failure(let e): throw StoreError.system("hash", path, e)
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            let key = StatKey(st)
            if let cache, let d = cache.lookup(key) { return (d, .file) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
            defer { buffer.deallocate() }
            let (d, _) = try hashFile(Array(path.utf8) + [0], display: path, buffer: buffer)
            cache?.record(key, d)
            return (d, .file)
        case S_IFDIR:
            var scan = try TreeScan(root: path)
            return (try digestTree(&scan, cache: cache), .directory)
        default:
            throw StoreError(
                .unsupportedFileType,
                "\(path) is \(TreeScan.kindName(st.st_mode)): kiln only hashes regular files, directories and symlinks.")
        }
    }

    /// Hashes one file by path (NUL-terminated bytes), streaming through `buffer`.
    static func hashFile(_ cPath: [UInt8], display: @autoclosure () -> String, buffer: UnsafeMutableRawBufferPointer) throws(StoreError) -> (Digest, Int64) {
        let fd = try Sys.call("open", display()) {
            cPath.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
            }
        }
        defer { Sys.close(fd) }
        return try hashFile(fd: fd, display: display(), buffer: buffer)
    }

    static func hashFile(fd: Int32, display: @autoclosure () -> String, buffer: UnsafeMutableRawBufferPointer) throws(StoreError) -> (Digest, Int64) {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        var h = Hasher256()
        while true {
            let n = try Sys.call("read", display()) { read(fd, buffer.baseAddress!, buffer.count) }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return (h.finalize(), h.count)
    }

    /// Fills in every file digest (from the cache or by hashing in parallel on all cores), then
    /// every directory digest bottom-up; returns the root's digest.
    static func digestTree(_ scan: inout TreeScan, cache: StatCache?) throws(StoreError) -> Digest {
        try hashFiles(&scan, cache: cache)
        var children = [[Int]](repeating: [], count: scan.entries.count)
        var rootChildren: [Int] = []
        for (i, e) in scan.entries.enumerated() {
            if e.parent < 0 { rootChildren.append(i) } else { children[e.parent].append(i) }
        }
        for i in scan.entries.indices.reversed() where scan.entries[i].kind == .directory {
            scan.entries[i].digest = listingDigest(children[i], scan.entries)
        }
        return listingDigest(rootChildren, scan.entries)
    }

    static func listingDigest(_ indices: [Int], _ entries: [TreeEntry]) -> Digest {
        var out = Array("kiln-dir-v1\n".utf8)
        for i in indices {
            let e = entries[i]
            switch e.kind {
            case .file:
                out += Array("file \(e.executable ? "x" : "-") \(e.size) \(e.digest!)".utf8)
            case .directory:
                out += Array("dir - 0 \(e.digest!)".utf8)
            case .symlink:
                out += Array("link - \(e.target.count) ".utf8)
                out += e.target
            }
            out.append(0)
            out += e.name
            out.append(0)
        }
        return Digest.of(out)
    }

    /// Hashes every file entry not answered by the cache, largest first, on all online CPUs.
    static func hashFiles(_ scan: inout TreeScan, cache: StatCache?) throws(StoreError) {
        var pending: [Int] = []
        for i in scan.entries.indices where scan.entries[i].kind == .file {
            if let cache, let d = cache.lookup(scan.entries[i].stat) {
                scan.entries[i].digest = d
            } else {
                pending.append(i)
            }
        }
        if pending.isEmpty { return }
        pending.sort { scan.entries[$0].size > scan.entries[$1].size }
        let paths = pending.map { scan.cPath(scan.entries[$0].path) }
        let results = UnsafeMutableBufferPointer<Result<(Digest, Int64), StoreError>?>.allocate(capacity: pending.count)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        let workers = max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), pending.count))
        let next = Atomic<Int>(0)
        let total = pending.count
        nonisolated(unsafe) let out = results
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if k >= total { break }
                let p = paths[k]
                do throws(StoreError) {
                    out[k] = .success(try hashFile(p, display: String(decoding: p.dropLast(), as: UTF8.self), buffer: buffer))
                } catch {
                    out[k] = .failure(error)
                }
            }
        }
        for (k, i) in pending.enumerated() {
            switch results[k]! {
            case .failure(let e): throw e
            case .success(let (d, n)):
                if n != scan.entries[i].size {
                    throw StoreError(
                        .changedWhileReading,
                        "\(scan.display(scan.entries[i].path)) changed size while it was hashed (\(scan.entries[i].size) → \(n) bytes); hash it again once nothing writes to it.")
                }
                scan.entries[i].digest = d
                cache?.record(scan.entries[i].stat, d)
            }
        }
    }
}

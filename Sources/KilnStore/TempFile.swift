#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
// `struct stat` is owned by CArchive once it is imported anywhere (archive.h includes sys/stat.h).
import CArchive
import SystemPackage

/// A file being written in a `tmp/` directory, held under an exclusive `flock` for its whole life.
///
/// The lock is how stale leftovers are told from live ones: the kernel drops it when the writer dies
/// (even of `kill -9`), so `TempFile.cleanStale` removes exactly the entries nobody holds. A writer
/// that loses the race against a cleaner (its file was unlinked before it got the lock) notices the
/// link count of 0 and starts over under another name.
final class TempFile {
    let path: String
    private(set) var fd: Int32
    private var done = false

    init(in directory: String, prefix: String, mode: mode_t = 0o644) throws(StoreError) {
        while true {
            let path = Sys.join(directory, "\(prefix).\(getpid()).\(Sys.randomSuffix())")
            let fd = try Sys.call("create temporary file", path) {
                open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            }
            if case .failure = Sys.attempt({ flock(fd, LOCK_EX | LOCK_NB) }) {
                Sys.close(fd)
                continue
            }
            var st = stat()
            if fstat(fd, &st) != 0 || st.st_nlink == 0 {
                Sys.close(fd)
                continue
            }
            self.path = path
            self.fd = fd
            return
        }
    }

    /// fsyncs (when `sync`), renames over `destination` and fsyncs its directory.
    func commit(to destination: String, sync: Bool = true) throws(StoreError) {
        if sync { try Sys.call("fsync", path) { fsync(fd) } }
        try Sys.call("rename \(path) to", destination) { rename(path, destination) }
        done = true
        if sync { Sys.fsyncDirectory(Sys.dirname(destination)) }
        Sys.close(fd)
        fd = -1
    }

    /// Removes the file (after a failure, or when the content already exists).
    func discard() {
        if done { return }
        done = true
        unlink(path)
        Sys.close(fd)
        fd = -1
    }

    deinit { discard() }

    /// Removes entries of `directory` that no live process holds (see the type's comment). Entries
    /// younger than `minimumAge` seconds are left alone (a directory being staged is not locked while
    /// its creator is still creating it). Returns how many were removed.
    @discardableResult
    static func cleanStale(in directory: String, prefix: String = "", minimumAge: Int64 = 0) -> Int {
        guard let names = try? Sys.listDirectory(directory) else { return 0 }
        var removed = 0
        let now = Sys.now()
        for name in names where name.hasPrefix(prefix) {
            let path = Sys.join(directory, name)
            guard case .success(let st) = Sys.lstat(path) else { continue }
            if minimumAge > 0 && now - Sys.nanos(st.st_mtim) < minimumAge * 1_000_000_000 { continue }
            if st.st_mode & S_IFMT == S_IFREG {
                let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                if fd < 0 { continue }
                defer { Sys.close(fd) }
                guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }  // a live writer holds it
                if unlink(path) == 0 { removed += 1 }
            } else if st.st_mode & S_IFMT == S_IFDIR {
                // A directory being staged is locked (flock on the directory itself) by its creator;
                // one younger than a minute may not be locked yet.
                if now - Sys.nanos(st.st_mtim) < 60 * 1_000_000_000 { continue }
                let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
                if fd < 0 { continue }
                defer { Sys.close(fd) }
                guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
                Sys.removeTree(path)
                removed += 1
            } else {
                if unlink(path) == 0 { removed += 1 }
            }
        }
        return removed
    }
}

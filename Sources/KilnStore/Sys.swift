#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
// `struct stat` is owned by CArchive once it is imported anywhere (archive.h includes sys/stat.h).
import CArchive
import SystemPackage

/// The one place raw system calls go through (DESIGN.md, Conventions 5): retries `EINTR` and turns
/// −1 into a `StoreError` that names the operation and the path.
enum Sys {
    /// Runs `body` until it does not fail with EINTR; −1 becomes a thrown error naming `what path`.
    @discardableResult
    static func call<T: FixedWidthInteger>(
        _ what: String, _ path: @autoclosure () -> String, _ body: () -> T
    ) throws(StoreError) -> T {
        while true {
            let r = body()
            if r != -1 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw StoreError.system(what, path(), Errno(rawValue: e))
        }
    }

    /// Like `call` but hands the errno back instead of throwing, for callers that expect some.
    static func attempt<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
        while true {
            let r = body()
            if r != -1 { return .success(r) }
            let e = Glibc.errno
            if e == EINTR { continue }
            return .failure(Errno(rawValue: e))
        }
    }

    /// readlinkat(dirfd, name) → the target's bytes; `shown` names the link in errors.
    static func readLink(_ dirfd: Int32, _ cname: [UInt8], shown: String) throws(StoreError) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 4097)
        let n = try call("read symlink", shown) {
            cname.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { c in
                    buf.withUnsafeMutableBufferPointer { b in
                        b.withMemoryRebound(to: CChar.self) { readlinkat(dirfd, c.baseAddress!, $0.baseAddress!, 4096) }
                    }
                }
            }
        }
        return Array(buf[0..<n])
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // never retried: on Linux the fd is gone even on EINTR
    }

    /// Writes all of `buffer` (short writes are continued).
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: @autoclosure () -> String) throws(StoreError) {
        var offset = 0
        while offset < buffer.count {
            let n = try call("write", path()) {
                Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            offset += n
        }
    }

    /// Reads up to `buffer.count` bytes, continuing short reads until EOF or full.
    static func readFull(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, path: @autoclosure () -> String) throws(StoreError) -> Int {
        var offset = 0
        while offset < buffer.count {
            let n = try call("read", path()) {
                Glibc.read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if n == 0 { break }
            offset += n
        }
        return offset
    }

    static func lstat(_ path: String) -> Result<Glibc.stat, Errno> {
        var st = Glibc.stat()
        return attempt { Glibc.lstat(path, &st) }.map { _ in st }
    }

    static func stat(_ path: String) -> Result<Glibc.stat, Errno> {
        var st = Glibc.stat()
        return attempt { cStat(path, &st) }.map { _ in st }
    }

    static func exists(_ path: String) -> Bool {
        if case .success = lstat(path) { return true }
        return false
    }

    static func isDirectory(_ path: String) -> Bool {
        if case .success(let st) = stat(path) { return st.st_mode & S_IFMT == S_IFDIR }
        return false
    }

    /// `mkdir -p`: creates `path` and its missing parents with mode 0755 (less the umask).
    static func makeDirectories(_ path: String) throws(StoreError) {
        if isDirectory(path) { return }
        let parent = dirname(path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent) }
        switch attempt({ Glibc.mkdir(path, 0o755) }) {
        case .success: return
        case .failure(let e) where e == .fileExists && isDirectory(path): return
        case .failure(let e): throw StoreError.system("create directory", path, e)
        }
    }

    /// fsyncs a directory so a rename into it is durable.
    static func fsyncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = Glibc.fsync(fd)
            Glibc.close(fd)
        }
    }

    /// The entries of a directory (without `.` and `..`), as raw name bytes.
    static func listDirectory(fd dirfd: Int32, path: @autoclosure () -> String) throws(StoreError) -> [(name: [UInt8], type: UInt8)] {
        let dupfd = try call("open directory", path()) { Glibc.dup(dirfd) }
        guard let dir = fdopendir(dupfd) else {
            let e = Errno(rawValue: Glibc.errno)
            Glibc.close(dupfd)
            throw StoreError.system("open directory", path(), e)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var out: [(name: [UInt8], type: UInt8)] = []
        while true {
            Glibc.errno = 0
            guard let ent = readdir(dir) else {
                if Glibc.errno != 0 { throw StoreError.system("read directory", path(), Errno(rawValue: Glibc.errno)) }
                break
            }
            let name: [UInt8] = withUnsafePointer(to: &ent.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { c in
                    Array(UnsafeBufferPointer(start: c, count: strlen(UnsafeRawPointer(c).assumingMemoryBound(to: CChar.self))))
                }
            }
            if name == [46] || name == [46, 46] { continue }
            out.append((name, ent.pointee.d_type))
        }
        return out
    }

    static func listDirectory(_ path: String) throws(StoreError) -> [String] {
        let fd = try call("open directory", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        return try listDirectory(fd: fd, path: path).map { String(decoding: $0.name, as: UTF8.self) }
    }

    /// Removes a file or a whole tree without following symlinks. Missing is fine.
    static func removeTree(_ path: String) {
        guard case .success(let st) = lstat(path) else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            _ = Glibc.chmod(path, 0o700)  // a read-only directory would refuse the unlinks
            if let names = try? listDirectory(path) {
                for n in names { removeTree(path + "/" + n) }
            }
            _ = Glibc.rmdir(path)
        } else {
            _ = Glibc.unlink(path)
        }
    }

    static func dirname(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        let d = p[..<slash]
        return d.isEmpty ? "/" : String(d)
    }

    static func basename(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return String(p[p.index(after: slash)...])
    }

    static func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// Current working directory.
    static func cwd() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return "." }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A random hex string for temporary names.
    static func randomSuffix() -> String {
        var g = SystemRandomNumberGenerator()
        let n = g.next() as UInt64
        return String(n, radix: 16)
    }

    /// Seconds and nanoseconds as one Int64 of nanoseconds.
    static func nanos(_ ts: timespec) -> Int64 {
        Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return nanos(ts)
    }
}

/// Display form of raw name bytes (invalid UTF-8 shown with replacement characters).
func display(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// `withUnsafeBytes` that keeps the typed error (the standard library's is `rethrows`).
func withBytes<T>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(StoreError) -> T) throws(StoreError) -> T {
    let r: Result<T, StoreError> = a.withUnsafeBytes { b in
        do throws(StoreError) { return .success(try body(b)) } catch { return .failure(error) }
    }
    return try r.get()
}

func withMutableBytes<T>(_ a: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(StoreError) -> T) throws(StoreError) -> T {
    let r: Result<T, StoreError> = a.withUnsafeMutableBytes { b in
        do throws(StoreError) { return .success(try body(b)) } catch { return .failure(error) }
    }
    return try r.get()
}

/// stat(2), named apart from the `stat` struct and `Sys.stat`.
private func cStat(_ path: String, _ st: inout stat) -> Int32 {
    stat(path, &st)
}

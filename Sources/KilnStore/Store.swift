#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CArchive
import SystemPackage

/// The content-addressed store under a cache directory (DESIGN.md, Cache layout):
///
/// ```
/// cas/sha256/ab/abcdef…   blobs, named by the hex of their SHA-256, read-only (0444)
/// ac/ab/<action key hex>  action results (JSON)
/// runs/<run id>           a run record's digest (`sha256:HEX\n`)
/// refs/<name>             named things: a digest (`sha256:HEX\n`)
/// quarantine/<hex>        blobs `kiln cache verify` found corrupt
/// statcache               the hash cache (see `StatCache`)
/// lock                    shared by writers, exclusive for gc
/// tmp/                    staging; a crash leaves nothing visible outside it
/// ```
///
/// Writes go to `tmp/`, are hashed while written, fsynced and renamed into place; a blob that exists
/// already is success. Reads verify the digest. Several processes may share one store.
public final class Store: Sendable {
    public let root: String

    public var casDirectory: String { Sys.join(root, "cas/sha256") }
    public var tmpDirectory: String { Sys.join(root, "tmp") }
    public var acDirectory: String { Sys.join(root, "ac") }
    public var runsDirectory: String { Sys.join(root, "runs") }
    public var refsDirectory: String { Sys.join(root, "refs") }
    public var quarantineDirectory: String { Sys.join(root, "quarantine") }
    public var statCachePath: String { Sys.join(root, "statcache") }
    /// Tree digest → archive digest of workspace inputs already archived (derived; not a gc root).
    public var treesDirectory: String { Sys.join(root, "trees") }

    /// Opens (creating when missing) the store at `root` and removes stale leftovers in its `tmp/`.
    public init(root: String) throws(StoreError) {
        self.root = root
        for dir in ["cas/sha256", "ac", "runs", "refs", "tmp"] {
            try Sys.makeDirectories(Sys.join(root, dir))
        }
        TempFile.cleanStale(in: Sys.join(root, "tmp"))
    }

    /// Opens an existing store without creating anything; nil when `root` has no `cas/`.
    public static func existing(root: String) throws(StoreError) -> Store? {
        guard Sys.isDirectory(Sys.join(root, "cas")) else { return nil }
        return try Store(root: root)
    }

    // MARK: Blobs

    public func blobPath(_ d: Digest) -> String {
        let hex = d.hex
        return "\(casDirectory)/\(hex.prefix(2))/\(hex)"
    }

    public func contains(_ d: Digest) -> Bool { Sys.exists(blobPath(d)) }

    /// Stores `bytes`; returns their digest.
    @discardableResult
    public func put(bytes: [UInt8]) throws(StoreError) -> Digest {
        try put { (w) throws(StoreError) in try withBytes(bytes) { (b) throws(StoreError) in try w.write(b) } }
    }

    /// Stores a copy of the file at `path`, streaming; returns its digest.
    @discardableResult
    public func put(file path: String) throws(StoreError) -> Digest {
        let fd = try Sys.call("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        return try put { (w) throws(StoreError) in
            while true {
                let n = try Sys.call("read", path) { Glibc.read(fd, buffer.baseAddress!, buffer.count) }
                if n == 0 { break }
                try w.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
        }
    }

    /// Stores what `body` writes: to a locked file in `tmp/`, hashed while written, fsynced, renamed
    /// to its digest. When the blob exists already the temporary file is dropped. On any failure
    /// (ENOSPC included) nothing but the removed temporary file was touched.
    @discardableResult
    public func put(_ body: (BlobWriter) throws(StoreError) -> Void) throws(StoreError) -> Digest {
        let tmp = try TempFile(in: tmpDirectory, prefix: "blob", mode: 0o444)
        do throws(StoreError) {
            let writer = BlobWriter(fd: tmp.fd, path: tmp.path)
            try body(writer)
            try writer.flush()
            let d = writer.hasher.finalize()
            let dest = blobPath(d)
            if Sys.exists(dest) {
                tmp.discard()
                return d
            }
            try Sys.makeDirectories(Sys.dirname(dest))
            try tmp.commit(to: dest)
            return d
        } catch {
            tmp.discard()
            throw error
        }
    }

    /// Opens blob `d` for reading (the caller closes it); a missing blob is `.notFound`. The
    /// bytes are not checked here: readers verify the digest as they go.
    func openBlob(_ d: Digest) throws(StoreError) -> Int32 {
        let path = blobPath(d)
        switch Sys.attempt({ open(path, O_RDONLY | O_CLOEXEC) }) {
        case .success(let f): return f
        case .failure(let e) where e == .noSuchFileOrDirectory:
            throw StoreError(.notFound, "blob \(d) is not in the cache at \(root) (no file \(path)).")
        case .failure(let e): throw StoreError.system("open blob", path, e)
        }
    }

    /// Streams the blob `d` through `consume` in chunks, verifying its digest on the way. The final
    /// chunk is handed over before the check, so a consumer that cannot undo must stage what it
    /// receives (as `read` and `copy(_:to:)` do); a mismatch throws `.corrupt` naming the file.
    public func stream(_ d: Digest, _ consume: (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) {
        let path = blobPath(d)
        let fd = try openBlob(d)
        defer { Sys.close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var h = Hasher256()
        while true {
            let n = try Sys.call("read", path) { Glibc.read(fd, buffer.baseAddress!, buffer.count) }
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            h.update(chunk)
            try consume(chunk)
        }
        let actual = h.finalize()
        if actual != d { throw Store.corrupt(d, path: path, actual: actual) }
    }

    static func corrupt(_ d: Digest, path: String, actual: Digest) -> StoreError {
        StoreError(
            .corrupt,
            "blob \(d) is corrupt: the file \(path) hashes to \(actual). It was not used; run `kiln cache verify` to quarantine it, then rebuild what needs it.")
    }

    /// Re-hashes a blob; throws `.corrupt` or `.notFound`.
    public func verify(_ d: Digest) throws(StoreError) {
        try stream(d) { _ in }
    }

    /// The verified bytes of a blob (never corrupt ones).
    public func read(_ d: Digest) throws(StoreError) -> [UInt8] {
        var out: [UInt8] = []
        try stream(d) { out += $0 }
        return out
    }

    /// Writes the verified blob to `fd`: verified in full first, then copied (blobs are immutable).
    public func copy(_ d: Digest, toFileDescriptor fd: Int32, display: String) throws(StoreError) {
        try verify(d)
        try stream(d) { (chunk) throws(StoreError) in try Sys.writeAll(fd, chunk, path: display) }
    }

    // MARK: Locking

    public enum LockMode: Sendable { case shared, exclusive }

    /// Holds the store-wide lock while `body` runs: writers take it shared, gc exclusive, so gc never
    /// deletes a blob between a writer's "it exists already" and the ref or record that names it.
    public func withLock<T>(_ mode: LockMode, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let path = Sys.join(root, "lock")
        let fd = try Sys.call("open lock", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        defer { Sys.close(fd) }
        try Sys.call("lock", path) { flock(fd, mode == .shared ? LOCK_SH : LOCK_EX) }
        return try body()
    }

    /// Takes the store-wide lock and keeps it until `release()` (or deinit): `kiln run` holds it
    /// shared from its first blob until its run record names them all.
    public final class HeldLock: @unchecked Sendable {
        private var fd: Int32
        init(fd: Int32) { self.fd = fd }
        public func release() {
            if fd >= 0 { Sys.close(fd) }
            fd = -1
        }
        deinit { release() }
    }

    public func holdLock(_ mode: LockMode) throws(StoreError) -> HeldLock {
        let path = Sys.join(root, "lock")
        let fd = try Sys.call("open lock", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        do throws(StoreError) {
            try Sys.call("lock", path) { flock(fd, mode == .shared ? LOCK_SH : LOCK_EX) }
        } catch {
            Sys.close(fd)
            throw error
        }
        return HeldLock(fd: fd)
    }

    // MARK: Small files: refs, runs, action results

    /// Writes `bytes` to `path` under the store atomically (temp file, fsync, rename).
    func writeAtomically(_ bytes: [UInt8], to path: String) throws(StoreError) {
        try Sys.makeDirectories(Sys.dirname(path))
        let tmp = try TempFile(in: tmpDirectory, prefix: "meta")
        do throws(StoreError) {
            try withBytes(bytes) { (b) throws(StoreError) in try Sys.writeAll(tmp.fd, b, path: tmp.path) }
            try tmp.commit(to: path)
        } catch {
            tmp.discard()
            throw error
        }
    }

    func readSmall(_ path: String) throws(StoreError) -> [UInt8]? {
        let fd: Int32
        switch Sys.attempt({ open(path, O_RDONLY | O_CLOEXEC) }) {
        case .success(let f): fd = f
        case .failure(let e) where e == .noSuchFileOrDirectory: return nil
        case .failure(let e): throw StoreError.system("open", path, e)
        }
        defer { Sys.close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try withMutableBytes(&buf) { (b) throws(StoreError) in try Sys.call("read", path) { Glibc.read(fd, b.baseAddress!, b.count) } }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// Checks a ref or run name: `/`-separated components of letters, digits, `.`, `_`, `-`, `@`, `+`, `=`,
    /// none empty or starting with a dot.
    static func checkName(_ name: String, what: String) throws(StoreError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@+=".utf8)
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        for p in parts where p.isEmpty || p.hasPrefix(".") || !p.utf8.allSatisfy(allowed.contains) {
            throw StoreError(
                .invalidArgument,
                "'\(name)' is not a valid \(what) name: use '/'-separated parts of letters, digits and . _ - @ + =, none empty or starting with '.'.")
        }
    }

    public func setRef(_ name: String, to d: Digest) throws(StoreError) {
        try Store.checkName(name, what: "ref")
        try writeAtomically(Array("\(d)\n".utf8), to: Sys.join(refsDirectory, name))
    }

    public func ref(_ name: String) throws(StoreError) -> Digest? {
        try Store.checkName(name, what: "ref")
        let path = Sys.join(refsDirectory, name)
        guard let bytes = try readSmall(path) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingTrailingNewlines()
        guard let d = Digest(text) else {
            throw StoreError(.corrupt, "ref file \(path) does not hold a digest ('sha256:' and 64 hex digits).")
        }
        return d
    }

    public func deleteRef(_ name: String) throws(StoreError) {
        try Store.checkName(name, what: "ref")
        _ = unlink(Sys.join(refsDirectory, name))
    }

    /// Records that run `id` produced the record blob `d`.
    public func addRun(_ id: String, record d: Digest) throws(StoreError) {
        try Store.checkName(id, what: "run id")
        try writeAtomically(Array("\(d)\n".utf8), to: Sys.join(runsDirectory, id))
    }

    public func run(_ id: String) throws(StoreError) -> Digest? {
        try Store.checkName(id, what: "run id")
        guard let bytes = try readSmall(Sys.join(runsDirectory, id)) else { return nil }
        return Digest(String(decoding: bytes, as: UTF8.self).trimmingTrailingNewlines())
    }

    /// The archive of a tree archived before, if that blob is still in the store.
    public func archive(forTree tree: Digest) -> Digest? {
        let hex = tree.hex
        guard let bytes = try? readSmall("\(treesDirectory)/\(hex.prefix(2))/\(hex)"),
              let d = Digest(String(decoding: bytes, as: UTF8.self).trimmingTrailingNewlines()), contains(d) else { return nil }
        return d
    }

    public func setArchive(_ archive: Digest, forTree tree: Digest) throws(StoreError) {
        let hex = tree.hex
        try writeAtomically(Array("\(archive)\n".utf8), to: "\(treesDirectory)/\(hex.prefix(2))/\(hex)")
    }

    func actionPath(_ key: Digest) -> String {
        let hex = key.hex
        return "\(acDirectory)/\(hex.prefix(2))/\(hex)"
    }

    /// Stores the action result (JSON bytes) for an action key.
    public func setActionResult(_ key: Digest, json: [UInt8]) throws(StoreError) {
        try writeAtomically(json, to: actionPath(key))
    }

    /// The action result for `key`, if cached; a hit refreshes its mtime (gc's `--older-than` age).
    public func actionResult(_ key: Digest) throws(StoreError) -> [UInt8]? {
        let path = actionPath(key)
        guard let bytes = try readSmall(path) else { return nil }
        _ = utimensat(AT_FDCWD, path, nil, 0)
        return bytes
    }
}

/// Hashes and writes a blob being stored (buffered in 1 MiB).
public final class BlobWriter {
    let fd: Int32
    let path: String
    var hasher = Hasher256()
    private var buffer: [UInt8] = []

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        hasher.update(bytes)
        if buffer.count + bytes.count > (1 << 20) { try flush() }
        if bytes.count >= (1 << 20) {
            try Sys.writeAll(fd, bytes, path: path)
        } else {
            buffer += bytes
        }
    }

    func flush() throws(StoreError) {
        if buffer.isEmpty { return }
        try withBytes(buffer) { (b) throws(StoreError) in try Sys.writeAll(fd, b, path: path) }
        buffer.removeAll(keepingCapacity: true)
    }

    public var bytesWritten: Int64 { hasher.count }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" || s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CArchive
import SystemPackage

/// What was packed.
public struct ArchiveSummary: Sendable {
    public var entries: Int
    /// Bytes of the archive.
    public var bytes: Int64
    /// The archive's digest, when it was computed (always for the store; `-o` on request).
    public var digest: Digest?
}

/// Deterministic tar archives (DESIGN.md, Identity: Artifact), written with libarchive.
///
/// The same content gives the same bytes whatever the mtimes, atimes, owners, umask, creation
/// order, hardlinks or machine:
/// - format **pax restricted** (plain ustar headers, a pax extended header only when ustar cannot
///   hold a field, e.g. a name longer than ustar allows), no compression, 512-byte records with the
///   standard two zero records at the end and no padding beyond them (`bytes_in_last_block = 1`);
/// - entries in **canonical order** (see `TreeScan`: pre-order, siblings sorted by name bytes, each
///   directory before its contents); a directory archives its contents with names relative to it
///   (no `./` prefix, no entry for the directory itself), directories named with a trailing `/`;
///   a single file archives as one entry named by its base name;
/// - **mtime** = `sourceDateEpoch` (0 unless given), no atime/ctime/birthtime;
/// - **uid/gid 0**, no user or group names;
/// - **modes**: 0755 for files whose owner-execute bit is set, 0644 for other files, 0755 for
///   directories, 0777 for symlinks (as every tar writes them);
/// - **no xattrs, ACLs, file flags or sparse maps**; hardlinks are stored as regular files (each
///   name gets the content); symlinks are stored as symlinks with their target unchanged; empty
///   directories are kept; sockets, fifos and devices are refused with an error naming them.
public struct ArchiveWriter {
    public var sourceDateEpoch: Int64
    /// Leave sockets, fifos and device nodes out instead of refusing them (for image roots, whose
    /// /dev kiln builds itself).
    public var skipsSpecialFiles: Bool

    public init(sourceDateEpoch: Int64 = 0, skipsSpecialFiles: Bool = false) {
        self.sourceDateEpoch = sourceDateEpoch
        self.skipsSpecialFiles = skipsSpecialFiles
    }

    /// Archives `source` to the file `output`, written beside it under a temporary name and renamed
    /// into place at the end (so a failure leaves no partial archive).
    public func create(source: String, output: String, computeDigest: Bool) throws(StoreError) -> ArchiveSummary {
        guard Sys.isDirectory(Sys.dirname(output)) else {
            throw StoreError(.invalidArgument, "cannot write \(output): the directory \(Sys.dirname(output)) does not exist. Create it first.")
        }
        if Sys.isDirectory(output) {
            throw StoreError(.invalidArgument, "cannot write \(output): it is a directory. Give -o a file name, such as \(Sys.join(output, "out.tar")).")
        }
        let tmp = Sys.join(Sys.dirname(output), ".\(Sys.basename(output)).kiln-tmp-\(Sys.randomSuffix())")
        let fd = try Sys.call("create", tmp) { open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        // The archive being written (and an older one it replaces) may lie inside the tree: like GNU
        // tar, never archive the archive itself.
        var skip: [FileID] = []
        var own = stat()
        if fstat(fd, &own) == 0 { skip.append(FileID(own)) }
        if case .success(let old) = Sys.stat(output) { skip.append(FileID(old)) }
        var hasher: Hasher256? = computeDigest ? Hasher256() : nil
        do throws(StoreError) {
            var summary = try write(source: source, skipping: skip) { (chunk) throws(StoreError) in
                hasher?.update(chunk)
                try Sys.writeAll(fd, chunk, path: tmp)
            }
            summary.digest = hasher?.finalize()
            try Sys.call("close", tmp) { Glibc.close(fd) }
            try Sys.call("rename \(tmp) to", output) { rename(tmp, output) }
            return summary
        } catch {
            Sys.close(fd)
            unlink(tmp)
            throw error
        }
    }

    /// Archives `source` into the store; returns the summary with the blob's digest.
    public func store(source: String, in store: Store) throws(StoreError) -> ArchiveSummary {
        var summary: ArchiveSummary?
        let d = try store.put { (w) throws(StoreError) in
            summary = try write(source: source) { (chunk) throws(StoreError) in try w.write(chunk) }
        }
        summary!.digest = d
        return summary!
    }

    /// Archives `source`, handing the archive's bytes to `sink` in order.
    ///
    /// The tree is walked and written in one pass (the canonical order is a pre-order walk), every
    /// file opened relative to its directory's descriptor with `O_NOFOLLOW`.
    public func write(source: String, sink: @escaping (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) -> ArchiveSummary {
        try write(source: source, skipping: [], sink: sink)
    }

    func write(source: String, skipping: [FileID], sink: @escaping (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) -> ArchiveSummary {
        let st: stat
        switch Sys.stat(source) {
        case .success(let s): st = s
        case .failure(let e): throw StoreError.system("archive", source, e)
        }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFDIR || kind == S_IFREG else {
            throw StoreError(
                .unsupportedFileType,
                "\(source) is \(TreeScan.kindName(st.st_mode)): kiln only archives regular files, directories and symlinks.")
        }

        // Names are UTF-8 whatever the user's locale (libarchive converts through the thread's
        // locale): a pax 'path' record holds names that are not plain ASCII; bytes that are not
        // UTF-8 go in as they are, with hdrcharset=BINARY.
        let locale = UTF8Locale()
        defer { locale.restore() }
        let context = WriteContext(sink: sink)
        guard let a = archive_write_new() else { throw StoreError(.archive, "libarchive could not allocate a writer.") }
        defer { archive_write_free(a) }
        try Self.check(a, context, archive_write_set_format_pax_restricted(a), "set the tar format")
        try Self.check(a, context, archive_write_add_filter_none(a), "set no compression")
        // Blocks only batch the writes: with bytes_in_last_block = 1 the last block is not padded,
        // so the bytes are the same for any block size; 64 KiB means 6x fewer write(2)s than 10 KiB.
        try Self.check(a, context, archive_write_set_bytes_per_block(a, 64 << 10), "set the block size")
        try Self.check(a, context, archive_write_set_bytes_in_last_block(a, 1), "set the last block size")
        let unmanaged = Unmanaged.passRetained(context)
        try Self.check(
            a, context, archive_write_open2(a, unmanaged.toOpaque(), nil, writeCallback, nil, freeCallback),
            "start the archive")
        guard let entry = archive_entry_new() else { throw StoreError(.archive, "libarchive could not allocate an entry.") }
        defer { archive_entry_free(entry) }
        // 128 KiB: each chunk is still in the CPU cache when libarchive writes it out (1 MiB was 20% slower).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 << 10, alignment: 64)
        defer { buffer.deallocate() }

        var walk = ArchiveWalk(a: a, entry: entry, context: context, buffer: buffer, epoch: sourceDateEpoch, root: source)
        walk.skip = skipping
        walk.skipsSpecialFiles = skipsSpecialFiles
        if kind == S_IFDIR {
            let fd = try Sys.call("open directory", source) { open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { Sys.close(fd) }
            try walk.directory(fd, prefix: [])
        } else {
            let parent = Sys.dirname(source)
            let fd = try Sys.call("open directory", parent) { open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { Sys.close(fd) }
            try walk.file(fd, name: Array(Sys.basename(source).utf8), path: Array(Sys.basename(source).utf8), st: st, follow: true)
        }
        try Self.check(a, context, archive_write_close(a), "finish the archive")
        return ArchiveSummary(entries: walk.count, bytes: context.written, digest: nil)
    }

    fileprivate static func check(_ a: OpaquePointer, _ context: WriteContext, _ r: Int32, _ what: @autoclosure () -> String) throws(StoreError) {
        if r == ARCHIVE_OK { return }
        if let e = context.error { throw e }
        let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
        throw StoreError(.archive, "\(what()): \(msg)")
    }
}

/// One archive being written: the walk in canonical order and the entry headers.
private struct ArchiveWalk {
    let a: OpaquePointer
    let entry: OpaquePointer
    let context: WriteContext
    let buffer: UnsafeMutableRawBufferPointer
    let epoch: Int64
    let root: String
    var count = 0
    /// Files left out (the archive being written).
    var skip: [FileID] = []
    var skipsSpecialFiles = false

    init(a: OpaquePointer, entry: OpaquePointer, context: WriteContext, buffer: UnsafeMutableRawBufferPointer, epoch: Int64, root: String) {
        (self.a, self.entry, self.context, self.buffer, self.epoch, self.root) = (a, entry, context, buffer, epoch, root)
    }

    func shown(_ path: [UInt8]) -> String { Sys.join(root, display(path)) }

    /// Writes the entries of the directory `dirfd` (names relative to the root start with `prefix`).
    mutating func directory(_ dirfd: Int32, prefix: [UInt8]) throws(StoreError) {
        var names = try Sys.listDirectory(fd: dirfd, path: prefix.isEmpty ? root : shown(prefix))
        names.sort { $0.name.lexicographicallyPrecedes($1.name) }
        for (name, _) in names {
            let path = prefix.isEmpty ? name : prefix + [47] + name
            let cname = name + [0]
            var st = stat()
            try Sys.call("stat", shown(path)) {
                cname.withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { fstatat(dirfd, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
                }
            }
            switch st.st_mode & S_IFMT {
            case S_IFREG where skip.contains(FileID(st)):
                continue
            case S_IFREG:
                try file(dirfd, name: name, path: path, st: st)
            case S_IFLNK:
                let target = try Sys.readLink(dirfd, cname, shown: shown(path))
                try header(path, type: 0o120000, perm: 0o777, size: 0, target: target)
                try finish(path)
            case S_IFDIR:
                try header(path + [47], type: 0o040000, perm: 0o755, size: 0, target: nil)
                try finish(path)
                let child = try Sys.call("open directory", shown(path)) {
                    cname.withUnsafeBufferPointer { p in
                        p.withMemoryRebound(to: CChar.self) {
                            openat(dirfd, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        }
                    }
                }
                defer { Sys.close(child) }
                try directory(child, prefix: path)
            default:
                if skipsSpecialFiles { continue }
                throw StoreError(
                    .unsupportedFileType,
                    "\(shown(path)) is \(TreeScan.kindName(st.st_mode)): kiln only archives regular files, directories and symlinks. Remove it or move it out of the tree.")
            }
        }
    }

    mutating func header(_ name: [UInt8], type: UInt32, perm: UInt32, size: Int64, target: [UInt8]?) throws(StoreError) {
        archive_entry_clear(entry)
        (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { archive_entry_copy_pathname(entry, $0.baseAddress!) }
        }
        archive_entry_set_mtime(entry, time_t(epoch), 0)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        archive_entry_set_filetype(entry, type)
        archive_entry_set_perm(entry, mode_t(perm))
        archive_entry_set_size(entry, la_int64_t(size))
        if let target {
            (target + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { archive_entry_copy_symlink(entry, $0.baseAddress!) }
            }
        }
        let r = archive_write_header(a, entry)
        try ArchiveWriter.check(a, context, r == ARCHIVE_WARN ? ARCHIVE_OK : r, "write the header of \(shown(name))")
        count += 1
    }

    func finish(_ path: [UInt8]) throws(StoreError) {
        try ArchiveWriter.check(a, context, archive_write_finish_entry(a), "finish \(shown(path))")
    }

    /// A regular file: 0755 when its owner-execute bit is set, else 0644; exactly `st_size` bytes.
    mutating func file(_ dirfd: Int32, name: [UInt8], path: [UInt8], st: stat, follow: Bool = false) throws(StoreError) {
        let size = Int64(st.st_size)
        try header(path, type: 0o100000, perm: st.st_mode & S_IXUSR != 0 ? 0o755 : 0o644, size: size, target: nil)
        let cname = name + [0]
        let fd = try Sys.call("open", shown(path)) {
            cname.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { openat(dirfd, $0.baseAddress!, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW)) }
            }
        }
        defer { Sys.close(fd) }
        if size > (1 << 20) { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
        var remaining = size
        // Asking for one byte more than expected detects a file that grew, without another read.
        while true {
            let want = Int(min(Int64(buffer.count), remaining + 1))
            let n = try Sys.call("read", shown(path)) { read(fd, buffer.baseAddress!, want) }
            if Int64(n) > remaining {
                throw StoreError(.changedWhileReading, "\(shown(path)) grew while it was archived; archive it again once nothing writes to it.")
            }
            if n == 0 {
                if remaining == 0 { break }
                throw StoreError(.changedWhileReading, "\(shown(path)) shrank while it was archived; archive it again once nothing writes to it.")
            }
            let w = archive_write_data(a, buffer.baseAddress, n)
            if w != n { try ArchiveWriter.check(a, context, Int32(ARCHIVE_FATAL), "write \(shown(path)) into the archive") }
            remaining -= Int64(n)
            if remaining == 0 && n < want { break }  // short read at EOF: no need to ask again
        }
        try finish(path)
    }
}

/// A file's identity: device and inode.
struct FileID: Equatable {
    var dev: UInt64
    var ino: UInt64
    init(_ st: stat) {
        dev = UInt64(st.st_dev)
        ino = UInt64(st.st_ino)
    }
}

/// The libarchive client data for writing: where bytes go and the first error of the sink.
private final class WriteContext {
    let sink: (UnsafeRawBufferPointer) throws(StoreError) -> Void
    var error: StoreError?
    var written: Int64 = 0

    init(sink: @escaping (UnsafeRawBufferPointer) throws(StoreError) -> Void) {
        self.sink = sink
    }
}

private let writeCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeRawPointer?, Int) -> Int = {
    _, client, buffer, length in
    let context = Unmanaged<WriteContext>.fromOpaque(client!).takeUnretainedValue()
    if context.error != nil { return -1 }
    do throws(StoreError) {
        try context.sink(UnsafeRawBufferPointer(start: buffer, count: length))
        context.written += Int64(length)
        return length
    } catch {
        context.error = error
        return -1
    }
}

private let freeCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { _, client in
    Unmanaged<WriteContext>.fromOpaque(client!).release()
    return ARCHIVE_OK
}

func display<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    String(decoding: Array(bytes), as: UTF8.self)
}

/// Switches the calling thread to the C.UTF-8 locale (LC_CTYPE) until `restore`, so libarchive
/// reads and writes names as UTF-8 whatever LANG says; other threads are unaffected.
struct UTF8Locale {
    private let previous: locale_t?
    private let utf8: locale_t?

    init() {
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil)
        previous = utf8.map { uselocale($0) }
    }

    func restore() {
        if let previous { uselocale(previous) }
        if let utf8 { freelocale(utf8) }
    }
}

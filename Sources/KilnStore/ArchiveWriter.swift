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

    public init(sourceDateEpoch: Int64 = 0) {
        self.sourceDateEpoch = sourceDateEpoch
    }

    /// Archives `source` to the file `output`, written beside it under a temporary name and renamed
    /// into place at the end (so a failure leaves no partial archive).
    public func create(source: String, output: String, computeDigest: Bool) throws(StoreError) -> ArchiveSummary {
        let tmp = Sys.join(Sys.dirname(output), ".\(Sys.basename(output)).kiln-tmp-\(Sys.randomSuffix())")
        let fd = try Sys.call("create", tmp) { open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        var hasher: Hasher256? = computeDigest ? Hasher256() : nil
        do throws(StoreError) {
            var summary = try write(source: source) { (chunk) throws(StoreError) in
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
    public func write(source: String, sink: @escaping (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) -> ArchiveSummary {
        let st: stat
        switch Sys.stat(source) {
        case .success(let s): st = s
        case .failure(let e): throw StoreError.system("archive", source, e)
        }
        var entries: [TreeEntry]
        let root: String
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            entries = try TreeScan(root: source).entries
            root = source
        case S_IFREG:
            let name = Array(Sys.basename(source).utf8)
            entries = [TreeEntry(
                path: name, nameStart: 0, kind: .file, executable: st.st_mode & S_IXUSR != 0,
                size: Int64(st.st_size), parent: -1, target: [], stat: StatKey(st), digest: nil)]
            root = Sys.dirname(source)
        default:
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
        func check(_ r: Int32, _ what: String) throws(StoreError) {
            if r == ARCHIVE_OK { return }
            if let e = context.error { throw e }
            let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
            throw StoreError(.archive, "\(what): \(msg)")
        }
        try check(archive_write_set_format_pax_restricted(a), "set the tar format")
        try check(archive_write_add_filter_none(a), "set no compression")
        try check(archive_write_set_bytes_per_block(a, 10240), "set the block size")
        try check(archive_write_set_bytes_in_last_block(a, 1), "set the last block size")
        let unmanaged = Unmanaged.passRetained(context)
        try check(
            archive_write_open2(a, unmanaged.toOpaque(), nil, writeCallback, nil, freeCallback),
            "start the archive")

        guard let entry = archive_entry_new() else { throw StoreError(.archive, "libarchive could not allocate an entry.") }
        defer { archive_entry_free(entry) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        let rootBytes = Array(root.utf8)

        for e in entries {
            archive_entry_clear(entry)
            var name = e.path
            if e.kind == .directory { name.append(47) }
            name.append(0)
            name.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { archive_entry_copy_pathname(entry, $0.baseAddress!) }
            }
            archive_entry_set_mtime(entry, time_t(sourceDateEpoch), 0)
            archive_entry_set_uid(entry, 0)
            archive_entry_set_gid(entry, 0)
            switch e.kind {
            case .directory:
                archive_entry_set_filetype(entry, 0o040000)
                archive_entry_set_perm(entry, 0o755)
                archive_entry_set_size(entry, 0)
            case .symlink:
                archive_entry_set_filetype(entry, 0o120000)
                archive_entry_set_perm(entry, 0o777)
                archive_entry_set_size(entry, 0)
                let target = e.target + [0]
                target.withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { archive_entry_copy_symlink(entry, $0.baseAddress!) }
                }
            case .file:
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, e.executable ? 0o755 : 0o644)
                archive_entry_set_size(entry, la_int64_t(e.size))
            }
            let header = archive_write_header(a, entry)
            try check(header == ARCHIVE_WARN ? ARCHIVE_OK : header, "write the header of \(display(e.path))")
            if e.kind == .file {
                var cPath = rootBytes
                if cPath.last != 47 { cPath.append(47) }
                cPath += e.path
                cPath.append(0)
                let shown = display(cPath.dropLast())
                try copyFile(cPath, shown: shown, size: e.size, buffer: buffer) { (chunk) throws(StoreError) in
                    let n = archive_write_data(a, chunk.baseAddress, chunk.count)
                    if n != chunk.count { try check(Int32(ARCHIVE_FATAL), "write \(shown) into the archive") }
                }
            }
            try check(archive_write_finish_entry(a), "finish \(display(e.path))")
        }
        try check(archive_write_close(a), "finish the archive")
        return ArchiveSummary(entries: entries.count, bytes: context.written, digest: nil)
    }

    /// Streams exactly `size` bytes of the file at `cPath`; a file that shrank or grew meanwhile is an error.
    private func copyFile(
        _ cPath: [UInt8], shown: String, size: Int64, buffer: UnsafeMutableRawBufferPointer,
        _ consume: (UnsafeRawBufferPointer) throws(StoreError) -> Void
    ) throws(StoreError) {
        let fd = try Sys.call("open", shown) {
            cPath.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
            }
        }
        defer { Sys.close(fd) }
        if size > (1 << 20) { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
        var remaining = size
        while remaining > 0 {
            let want = Int(min(Int64(buffer.count), remaining))
            let n = try Sys.call("read", shown) { read(fd, buffer.baseAddress!, want) }
            if n == 0 {
                throw StoreError(.changedWhileReading, "\(shown) shrank while it was archived; archive it again once nothing writes to it.")
            }
            try consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            remaining -= Int64(n)
        }
        let extra = try Sys.call("read", shown) { read(fd, buffer.baseAddress!, 1) }
        if extra != 0 {
            throw StoreError(.changedWhileReading, "\(shown) grew while it was archived; archive it again once nothing writes to it.")
        }
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

#if canImport(Glibc)
import Glibc
#endif
import CArchive

/// A bundle: one deterministic tar holding a manifest (`kiln-bundle.json`) and blobs
/// (`blobs/sha256/HEX`), each entry mode 0444, owner 0, mtime 0, in that order (manifest first,
/// blobs sorted by digest). The engine decides what goes in; this file only moves bytes, and
/// checks every blob's digest on the way out and on the way in.
public enum RunBundle {
    public static let manifestName = "kiln-bundle.json"
    static let blobPrefix = "blobs/sha256/"
    /// A manifest larger than this is refused (it lists digests, not data).
    static let manifestLimit = 64 << 20

    /// Writes the bundle to `output` (beside it under a temporary name, renamed at the end, so a
    /// failure leaves nothing). Each blob is verified as it is copied. Returns the bundle's size.
    @discardableResult
    public static func write(manifest: [UInt8], blobs: [Digest], from store: Store, to output: String) throws(StoreError) -> Int64 {
        let dir = Sys.dirname(output)
        guard Sys.isDirectory(dir) else {
            throw StoreError(.invalidArgument, "cannot write \(output): the directory \(dir) does not exist.")
        }
        let tmp = Sys.join(dir, ".\(Sys.basename(output)).kiln-tmp-\(Sys.randomSuffix())")
        let fd = try Sys.call("create", tmp) { open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        do throws(StoreError) {
            // No fsync: like tar, the bundle is a user's file (the rename still makes it appear whole).
            try writeEntries(fd: fd, display: output, manifest: manifest, blobs: blobs, store: store)
            var st = stat()
            _ = fstat(fd, &st)
            try Sys.call("close", tmp) { Glibc.close(fd) }
            try Sys.call("rename \(tmp) to", output) { rename(tmp, output) }
            return Int64(st.st_size)
        } catch {
            Sys.close(fd)
            unlink(tmp)
            throw error
        }
    }

    private static func writeEntries(fd: Int32, display: String, manifest: [UInt8], blobs: [Digest], store: Store) throws(StoreError) {
        let locale = UTF8Locale()
        defer { locale.restore() }
        guard let a = archive_write_new() else { throw StoreError(.archive, "libarchive could not allocate a writer.") }
        defer { archive_write_free(a) }
        func check(_ r: Int32, _ what: String) throws(StoreError) {
            guard r >= ARCHIVE_WARN else {
                let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
                throw StoreError(.io, "cannot write the bundle \(display) (\(what)): \(msg)")
            }
        }
        try check(archive_write_set_format_pax_restricted(a), "set the format")
        try check(archive_write_add_filter_none(a), "set no compression")
        try check(archive_write_set_bytes_per_block(a, 64 << 10), "set the block size")
        try check(archive_write_set_bytes_in_last_block(a, 1), "set the last block size")
        try check(archive_write_open_fd(a, fd), "open")
        guard let entry = archive_entry_new() else { throw StoreError(.archive, "libarchive could not allocate an entry.") }
        defer { archive_entry_free(entry) }
        // 128 KiB: still in the CPU cache when libarchive and the hasher read it (as ArchiveWriter).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 << 10, alignment: 64)
        defer { buffer.deallocate() }
        func header(_ name: String, size: Int64) throws(StoreError) {
            archive_entry_clear(entry)
            archive_entry_copy_pathname(entry, name)
            archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
            archive_entry_set_perm(entry, 0o444)
            archive_entry_set_size(entry, size)
            archive_entry_set_mtime(entry, 0, 0)
            archive_entry_set_uid(entry, 0)
            archive_entry_set_gid(entry, 0)
            try check(archive_write_header(a, entry), "write the header of \(name)")
        }
        func data(_ chunk: UnsafeRawBufferPointer, _ name: String) throws(StoreError) {
            var offset = 0
            while offset < chunk.count {
                let n = archive_write_data(a, chunk.baseAddress! + offset, chunk.count - offset)
                guard n > 0 else {
                    let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
                    throw StoreError(.io, "cannot write \(name) into the bundle \(display): \(msg)")
                }
                offset += n
            }
        }
        try header(manifestName, size: Int64(manifest.count))
        try withBytes(manifest) { (b) throws(StoreError) in try data(b, manifestName) }
        for d in blobs {
            let name = blobPrefix + d.hex
            var st = stat()
            guard stat(store.blobPath(d), &st) == 0 else {
                throw StoreError(.notFound, "blob \(d) is not in the cache at \(store.root), so it cannot be exported.")
            }
            try header(name, size: Int64(st.st_size))
            // Verified as it is copied, the hashing on another thread.
            let hasher = ParallelHasher()
            let path = store.blobPath(d)
            let blob = try store.openBlob(d)
            defer { Sys.close(blob) }
            _ = posix_fadvise(blob, 0, 0, POSIX_FADV_SEQUENTIAL)
            var copied: Int64 = 0
            while true {
                let n = try Sys.call("read", path) { Glibc.read(blob, buffer.baseAddress!, buffer.count) }
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                hasher.update(chunk)
                try data(chunk, name)
                copied += Int64(n)
            }
            let actual = hasher.finalize()
            guard actual == d, copied == Int64(st.st_size) else { throw Store.corrupt(d, path: path, actual: actual) }
        }
        try check(archive_write_close(a), "finish")
    }

    /// Reads a bundle into temporary files in the store's `tmp/`, checking that every entry is
    /// the manifest or a blob whose bytes hash to its name. Nothing enters the store until the
    /// caller commits; a refused or truncated bundle leaves only removed temporary files.
    public static func stage(_ path: String, in store: Store) throws(StoreError) -> StagedBundle {
        let fd = try Sys.call("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let locale = UTF8Locale()
        defer { locale.restore() }
        guard let a = archive_read_new() else { throw StoreError(.archive, "libarchive could not allocate a reader.") }
        defer { archive_read_free(a) }
        archive_read_support_format_tar(a)
        archive_read_support_filter_gzip(a)
        archive_read_support_filter_zstd(a)
        archive_read_support_filter_xz(a)
        func unreadable(_ what: String) -> StoreError {
            let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
            return StoreError(.refused, "refused the bundle \(path): \(what): \(msg). It is truncated or not a kiln bundle; nothing was imported.")
        }
        guard archive_read_open_fd(a, fd, 1 << 20) == ARCHIVE_OK else { throw unreadable("cannot open it") }
        let staged = StagedBundle()
        var entry: OpaquePointer?
        while true {
            let r = archive_read_next_header(a, &entry)
            if r == ARCHIVE_EOF { break }
            guard r >= ARCHIVE_WARN, let entry else {
                staged.discard()
                throw unreadable("reading the entry after \(staged.blobs.count + (staged.manifest == nil ? 0 : 1))")
            }
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            func refuse(_ why: String) -> StoreError {
                staged.discard()
                return StoreError(.refused, "refused the bundle \(path): entry '\(name)' \(why); nothing was imported.")
            }
            // Other tar tools add the folders; they carry nothing.
            if archive_entry_filetype(entry) & 0o170000 == Glibc.S_IFDIR, ["blobs", "blobs/", "blobs/sha256", "blobs/sha256/"].contains(name) { continue }
            guard archive_entry_filetype(entry) & 0o170000 == Glibc.S_IFREG else { throw refuse("is not a regular file") }
            if name == manifestName {
                guard staged.manifest == nil else { throw refuse("appears twice") }
                guard archive_entry_size(entry) <= manifestLimit else { throw refuse("is too large for a manifest") }
                var bytes: [UInt8] = []
                do throws(StoreError) {
                    try readData(a) { (chunk) throws(StoreError) in bytes += chunk }
                } catch { staged.discard(); throw unreadable("reading the manifest") }
                staged.manifest = bytes
                continue
            }
            guard name.hasPrefix(blobPrefix), let d = Digest(hex: String(name.dropFirst(blobPrefix.count))) else {
                throw refuse("is neither \(manifestName) nor blobs/sha256/<64 hex digits>")
            }
            guard staged.blobs[d] == nil else { throw refuse("appears twice") }
            let tmp: TempFile
            do throws(StoreError) { tmp = try TempFile(in: store.tmpDirectory, prefix: "import", mode: 0o444) } catch {
                staged.discard()
                throw error
            }
            staged.blobs[d] = tmp
            let hasher = ParallelHasher()
            do throws(StoreError) {
                var written: Int64 = 0, flushed: Int64 = 0
                try readData(a) { (chunk) throws(StoreError) in
                    hasher.update(chunk)
                    try Sys.writeAll(tmp.fd, chunk, path: tmp.path)
                    written += Int64(chunk.count)
                    // Start writing back every 8 MiB, so the fsync before the blob's rename has
                    // little left to wait for (the disk works while this thread reads and hashes).
                    // FADV_DONTNEED starts writeback without waiting (sync_file_range is not in
                    // the Glibc module).
                    if written - flushed >= 8 << 20 {
                        _ = posix_fadvise(tmp.fd, off_t(flushed), off_t(written - flushed), POSIX_FADV_DONTNEED)
                        flushed = written
                    }
                }
            } catch {
                _ = hasher.finalize()
                staged.discard()
                if error.code == .noSpace || error.code == .io { throw error }
                throw unreadable("reading \(name)")
            }
            let actual = hasher.finalize()
            guard actual == d else { throw refuse("does not hold the blob it names: its bytes hash to \(actual) (tampered or damaged)") }
        }
        guard staged.manifest != nil else {
            staged.discard()
            throw StoreError(.refused, "refused the bundle \(path): it has no \(manifestName), so it is not a kiln bundle; nothing was imported.")
        }
        return staged
    }

    /// Feeds an entry's data to `consume` in order (sparse holes are refused: bundles have none).
    private static func readData(_ a: OpaquePointer, _ consume: (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) {
        var expected: Int64 = 0
        while true {
            var buf: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            let r = archive_read_data_block(a, &buf, &size, &offset)
            if r == ARCHIVE_EOF { return }
            guard r >= ARCHIVE_WARN, offset == expected else { throw StoreError(.refused, "unreadable entry data") }
            if size > 0, let buf { try consume(UnsafeRawBufferPointer(start: buf, count: size)) }
            expected += Int64(size)
        }
    }
}

/// A bundle's content waiting in the store's `tmp/`: committed all together, or discarded.
public final class StagedBundle: @unchecked Sendable {
    public internal(set) var manifest: [UInt8]?
    var blobs: [Digest: TempFile] = [:]

    public var digests: Set<Digest> { Set(blobs.keys) }

    /// A staged blob's bytes (for the small ones the caller must inspect: the run record).
    public func read(_ d: Digest, limit: Int = 64 << 20) -> [UInt8]? {
        guard let tmp = blobs[d] else { return nil }
        var st = stat()
        guard fstat(tmp.fd, &st) == 0, st.st_size <= limit else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = bytes.withUnsafeMutableBytes { pread(tmp.fd, $0.baseAddress, $0.count, 0) }
        return n == bytes.count ? bytes : nil
    }

    /// Moves every blob into the store (one that exists already is dropped). Call it under the
    /// store's shared lock, before the run record naming them is added.
    public func commit(to store: Store) throws(StoreError) {
        for (d, tmp) in blobs.sorted(by: { $0.key.hex < $1.key.hex }) {
            let dest = store.blobPath(d)
            if Sys.exists(dest) {
                tmp.discard()
                continue
            }
            try Sys.makeDirectories(Sys.dirname(dest))
            try tmp.commit(to: dest)
        }
        blobs = [:]
    }

    public func discard() {
        for tmp in blobs.values { tmp.discard() }
        blobs = [:]
    }

    deinit { discard() }
}

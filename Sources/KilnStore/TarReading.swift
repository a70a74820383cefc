#if canImport(Glibc)
import Glibc
#endif
import CArchive

/// Reads the tar archive on `fd` (plain, gzip, bzip2, xz or zstd) entry by entry, for every
/// reader of the store (safe extraction, image layers): `each` gets the reader, the entry, its
/// 1-based index and `fail`, which turns a libarchive failure into a StoreError naming `shown`.
/// An archive with neither entries nor data is refused as not a tar. Returns the read context:
/// with `hashing`, its hasher has seen every byte libarchive read.
func readTarEntries(
    fd: Int32, shown: String, hashing: Bool,
    _ each: (_ archive: OpaquePointer, _ entry: OpaquePointer, _ index: Int, _ fail: (String) -> StoreError) throws(StoreError) -> Void
) throws(StoreError) -> ReadContext {
    let locale = UTF8Locale()
    defer { locale.restore() }
    let context = ReadContext(fd: fd, name: shown, hashing: hashing)
    guard let a = archive_read_new() else { throw StoreError(.archive, "libarchive could not allocate a reader.") }
    defer { archive_read_free(a) }
    archive_read_support_format_tar(a)
    archive_read_support_filter_gzip(a)
    archive_read_support_filter_bzip2(a)
    archive_read_support_filter_xz(a)
    archive_read_support_filter_zstd(a)
    let unmanaged = Unmanaged.passRetained(context)
    defer { unmanaged.release() }
    func fail(_ what: String) -> StoreError {
        if let e = context.error { return e }
        let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
        return StoreError(.archive, "\(shown) is not a readable tar archive (\(what)): \(msg)")
    }
    guard archive_read_open(a, unmanaged.toOpaque(), nil, readCallback, nil) == ARCHIVE_OK else { throw fail("opening") }
    var entry: OpaquePointer?
    var count = 0
    while true {
        let r = archive_read_next_header(a, &entry)
        if r == ARCHIVE_EOF { break }
        if r < ARCHIVE_WARN { throw fail("reading the header after \(count) entries") }
        guard let entry else { throw fail("reading a header") }
        count += 1
        try each(a, entry, count, fail)
    }
    if count == 0 && !context.sawData {
        throw StoreError(.archive, "\(shown) is empty: it is not a tar archive.")
    }
    return context
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CArchive
import SystemPackage

/// What applying layers did.
public struct LayerSummary: Sendable {
    public var entries = 0
    public var whiteouts = 0
    /// Device nodes, fifos and sockets left out (an image's /dev is kiln's own).
    public var skipped = 0
}

/// Applies tar layers, in order, onto a directory that the caller owns (a private staging folder),
/// the way container runtimes build a root filesystem from an image's layers.
///
/// - A later entry replaces an earlier one of the same name (a directory replacing a directory
///   keeps its contents).
/// - Whiteouts (OCI image spec, "Whiteouts"): `.wh.NAME` removes `NAME` of the layers below from
///   its directory; `.wh..wh..opq` removes everything the layers below put in its directory.
///   Neither is kept in the tree.
/// - Refused, naming the entry: absolute names, names with a `..` component, entries whose parent
///   is (or goes through) a symlink or a non-directory, hardlinks to anything but a regular file
///   of the tree. Symlinks keep their target as it is, absolute or not: nothing here follows them.
/// - Kept: regular files (0755 when the owner may execute, else 0644), directories (0755),
///   symlinks, hardlinks. Owners, times, setuid/setgid/sticky bits, xattrs are dropped (the
///   image archive normalises them anyway). Devices, fifos and sockets are skipped and counted.
///
/// Archives may be plain, gzip, bzip2, xz or zstd compressed tar.
public struct LayerApplier {
    public let root: String
    public private(set) var summary = LayerSummary()

    public init(root: String) {
        self.root = root
    }

    /// Applies the tar archive at `path` (`shown` names it in messages).
    public mutating func apply(archive path: String, shown: String) throws(StoreError) {
        let fd = try Sys.call("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        var createdHere: Set<String> = []
        _ = try readTarEntries(fd: fd, shown: shown, hashing: false) { (a, entry, _, fail) throws(StoreError) in
            try applyEntry(a, entry, layer: shown, createdHere: &createdHere, fail: fail)
        }
    }

    /// The entry names of a tar archive (any compression), in order; the data is skipped.
    public static func names(inArchive path: String, shown: String) throws(StoreError) -> [String] {
        let fd = try Sys.call("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        var names: [String] = []
        _ = try readTarEntries(fd: fd, shown: shown, hashing: false) { (_, entry, _, fail) throws(StoreError) in
            guard let raw = archive_entry_pathname(entry) ?? archive_entry_pathname_utf8(entry) else { throw fail("reading a header") }
            names.append(String(decoding: UnsafeRawBufferPointer(start: raw, count: strlen(raw)), as: UTF8.self))
        }
        return names
    }

    func refuse(_ layer: String, _ name: String, _ why: String) -> StoreError {
        StoreError(.refused, "refused the layer \(layer): entry '\(name)' \(why). Nothing was imported.")
    }

    /// The entry's name as components, without `.` and empty ones; refuses absolute names and `..`.
    func components(_ raw: String, layer: String) throws(StoreError) -> [String] {
        if raw.hasPrefix("/") { throw refuse(layer, raw, "is an absolute path; layer entries must be relative to the image's root") }
        var out: [String] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw refuse(layer, raw, "has a '..' component, which would write outside the image") }
            out.append(String(part))
        }
        return out
    }

    /// Checks that every parent of `components` is a real directory in the tree, creating missing ones.
    func prepareParents(_ components: [String], name: String, layer: String) throws(StoreError) {
        var path = root
        for c in components.dropLast() {
            path += "/" + c
            switch Sys.lstat(path) {
            case .success(let st):
                let kind = st.st_mode & S_IFMT
                if kind == S_IFLNK { throw refuse(layer, name, "would be written through the symlink '\(display(path))'") }
                if kind != S_IFDIR { throw refuse(layer, name, "would be written below '\(display(path))', which is not a directory") }
            case .failure(let e) where e == .noSuchFileOrDirectory:
                try Sys.call("create directory", path) { mkdir(path, 0o755) }
            case .failure(let e):
                throw StoreError.system("inspect", path, e)
            }
        }
    }

    func display(_ path: String) -> String { String(path.dropFirst(root.count + 1)) }

    mutating func applyEntry(_ a: OpaquePointer, _ entry: OpaquePointer, layer: String, createdHere: inout Set<String>,
                             fail: (String) -> StoreError) throws(StoreError) {
        guard let rawName = archive_entry_pathname(entry) ?? archive_entry_pathname_utf8(entry) else {
            throw StoreError(.archive, "\(layer) has an entry without a readable name.")
        }
        let raw = String(decoding: UnsafeRawBufferPointer(start: rawName, count: strlen(rawName)), as: UTF8.self)
        let parts = try components(raw, layer: layer)
        guard let base = parts.last else { return }  // "./": the root itself
        let parentPath = ([root] + parts.dropLast()).joined(separator: "/")
        let relative = parts.joined(separator: "/")
        let path = root + "/" + relative

        if base.hasPrefix(".wh.") {
            summary.whiteouts += 1
            // Nothing to hide where the layers below made no such directory (and none is made).
            var probe = root
            for c in parts.dropLast() {
                probe += "/" + c
                guard case .success(let st) = Sys.lstat(probe) else { return }
                if st.st_mode & S_IFMT == S_IFLNK { throw refuse(layer, raw, "would remove through the symlink '\(display(probe))'") }
                if st.st_mode & S_IFMT != S_IFDIR { return }
            }
            if base == ".wh..wh..opq" {
                let parentRelative = parts.dropLast().joined(separator: "/")
                for child in (try? Sys.listDirectory(parentPath)) ?? [] {
                    let childRelative = parentRelative.isEmpty ? child : parentRelative + "/" + child
                    if !createdHere.contains(childRelative) { Sys.removeTree(parentPath + "/" + child) }
                }
            } else {
                let hidden = String(base.dropFirst(4))
                if hidden.isEmpty || hidden == "." || hidden == ".." { throw refuse(layer, raw, "is a whiteout of no valid name") }
                Sys.removeTree(parentPath + "/" + hidden)
            }
            return
        }

        try prepareParents(parts, name: raw, layer: layer)
        let type = UInt32(archive_entry_filetype(entry)) & 0o170000
        let hardlink = archive_entry_hardlink(entry)
        if hardlink == nil && ![0o100000, 0o040000, 0o120000].contains(type) {
            summary.skipped += 1
            return
        }
        summary.entries += 1
        createdHere.insert(relative)
        let existing = Sys.lstat(path)
        if case .success(let st) = existing {
            if type == 0o040000 && hardlink == nil && st.st_mode & S_IFMT == S_IFDIR { return }
            Sys.removeTree(path)
        }

        if let hardlink {
            let target = String(decoding: UnsafeRawBufferPointer(start: hardlink, count: strlen(hardlink)), as: UTF8.self)
            let targetParts: [String]
            do throws(StoreError) { targetParts = try components(target, layer: layer) } catch {
                throw refuse(layer, raw, "is a hardlink to '\(target)', outside the image")
            }
            guard !targetParts.isEmpty else { throw refuse(layer, raw, "is a hardlink to the image's root") }
            var probe = root
            for c in targetParts.dropLast() {
                probe += "/" + c
                guard case .success(let st) = Sys.lstat(probe), st.st_mode & S_IFMT == S_IFDIR else {
                    throw refuse(layer, raw, "is a hardlink to '\(target)', which is not a regular file of the image")
                }
            }
            let targetPath = root + "/" + targetParts.joined(separator: "/")
            guard case .success(let st) = Sys.lstat(targetPath), st.st_mode & S_IFMT == S_IFREG else {
                throw refuse(layer, raw, "is a hardlink to '\(target)', which is not a regular file of the image")
            }
            try Sys.call("link \(targetPath) to", path) { link(targetPath, path) }
            return
        }

        switch type {
        case 0o040000:
            try Sys.call("create directory", path) { mkdir(path, 0o755) }
        case 0o120000:
            guard let rawTarget = archive_entry_symlink(entry) ?? archive_entry_symlink_utf8(entry) else {
                throw refuse(layer, raw, "is a symlink without a readable target")
            }
            try Sys.call("create symlink", path) { symlink(rawTarget, path) }
        default:
            let perm: mode_t = archive_entry_perm(entry) & 0o100 != 0 ? 0o755 : 0o644
            let out = try Sys.call("create", path) { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm) }
            defer { Sys.close(out) }
            _ = fchmod(out, perm)  // the umask may have taken bits away
            var buf: UnsafeRawPointer?
            var size = 0
            var offset: la_int64_t = 0
            var written: Int64 = 0
            while true {
                let r = archive_read_data_block(a, &buf, &size, &offset)
                if r == ARCHIVE_EOF { break }
                if r < ARCHIVE_WARN { throw fail("reading the data of '\(raw)'") }
                if size == 0 { continue }
                var done = 0
                while done < size {
                    let n = try Sys.call("write", path) { pwrite(out, buf! + done, size - done, off_t(offset) + off_t(done)) }
                    done += n
                }
                written = max(written, Int64(offset) + Int64(size))
            }
            let expected = archive_entry_size(entry)
            if expected > written { try Sys.call("truncate", path) { ftruncate(out, off_t(expected)) } }
        }
    }
}

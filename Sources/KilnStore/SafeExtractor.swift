#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CArchive
import SystemPackage

/// What was extracted.
public struct ExtractSummary: Sendable {
    public var entries: Int
    public var bytes: Int64
}

/// Extraction that is safe against hostile archives.
///
/// The archive is extracted into a fresh staging directory `.kiln-extract-*` beside the target
/// (same filesystem), which is renamed to the target only when every entry was accepted, so a
/// refused archive leaves nothing behind. The target must not exist or be an empty directory.
///
/// Refused, with the offending entry named: absolute names; names with a `..` component; an entry
/// that duplicates an earlier one (other than a directory repeated), which covers a directory later
/// replaced by a symlink; an entry whose parent path goes through a symlink or a non-directory
/// (every component is opened with `O_NOFOLLOW`); a symlink whose target is absolute or resolves
/// (following the archive's own symlinks, checked again once all entries are in, whatever their
/// order) outside the target; a hardlink whose target is absolute, has `..`, or is not a regular
/// file extracted earlier; character and block devices, fifos, sockets and anything else.
///
/// Kept: regular files, directories, symlinks, hardlinks. Permission bits are restored without
/// setuid, setgid and sticky bits; owners are not (files belong to whoever extracts); mtimes are
/// restored; xattrs, ACLs and file flags are ignored. Archives may be gzip, bzip2, xz or zstd
/// compressed tar (ustar, pax, GNU).
public struct SafeExtractor {
    /// Keep symlinks whatever their target (absolute, or leading out of the tree), as an image's
    /// root filesystem has them (`/usr/bin/awk -> /etc/alternatives/awk`): they are created, never
    /// followed (every parent is still opened with `O_NOFOLLOW`), and mean something only inside a
    /// sandbox whose `/` is the tree. Off (the default): such symlinks are refused.
    public var keepsAnySymlink: Bool

    public init(keepsAnySymlink: Bool = false) {
        self.keepsAnySymlink = keepsAnySymlink
    }

    /// Extracts the archive file `archive` to `target`; when `expected` is given the archive's bytes
    /// must hash to it (checked before the rename, so a corrupt blob is never served).
    public func extract(archive: String, to target: String, expected: Digest? = nil) throws(StoreError) -> ExtractSummary {
        let fd = try Sys.call("open", archive) { open(archive, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        return try extract(fd: fd, displayName: archive, to: target, expected: expected)
    }

    /// Extracts the blob `d` of `store` to `target`, verifying the blob's digest on the way.
    public func extract(blob d: Digest, from store: Store, to target: String) throws(StoreError) -> ExtractSummary {
        let fd = try store.openBlob(d)
        defer { Sys.close(fd) }
        return try extract(fd: fd, displayName: store.blobPath(d), to: target, expected: d)
    }

    public func extract(fd: Int32, displayName: String, to target: String, expected: Digest?) throws(StoreError) -> ExtractSummary {
        var target = target
        while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
        let parent = Sys.dirname(target)
        guard Sys.isDirectory(parent) else {
            throw StoreError(.invalidArgument, "cannot extract to \(target): its parent directory \(parent) does not exist. Create it first.")
        }
        if case .success(let st) = Sys.lstat(target) {
            guard st.st_mode & S_IFMT == S_IFDIR, (try? Sys.listDirectory(target))?.isEmpty == true else {
                throw StoreError(
                    .invalidArgument,
                    "cannot extract to \(target): it exists and is not an empty directory. kiln extract creates the directory (or fills an empty one) so that a refused archive leaves nothing behind; choose a new directory or remove it.")
            }
        }
        TempFile.cleanStale(in: parent, prefix: ".kiln-extract-", minimumAge: 60)
        let staging = Sys.join(parent, ".kiln-extract-\(Sys.basename(target))-\(Sys.randomSuffix())")
        try Sys.call("create staging directory", staging) { mkdir(staging, 0o700) }
        let rootfd: Int32
        do throws(StoreError) {
            rootfd = try Sys.call("open", staging) { open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        } catch {
            Sys.removeTree(staging)
            throw error
        }
        _ = flock(rootfd, LOCK_EX | LOCK_NB)  // marks it live for cleanStale in other processes
        var run = ExtractRun(rootfd: rootfd, archiveName: displayName)
        run.keepsAnySymlink = keepsAnySymlink
        do throws(StoreError) {
            let summary = try run.extractAll(fd: fd, expected: expected)
            try run.finish()
            try Sys.call("set the mode of", staging) { fchmod(rootfd, 0o755 & ~processUmask) }
            try Sys.call("rename \(staging) to", target) { rename(staging, target) }
            run.closeAll()
            Sys.close(rootfd)
            return summary
        } catch {
            run.closeAll()
            Sys.close(rootfd)
            Sys.removeTree(staging)
            throw error
        }
    }
}

/// One extraction in progress.
private struct ExtractRun {
    let rootfd: Int32
    let archiveName: String
    /// The last parent directory opened (entries come grouped by directory): its components and fd.
    var cachedParent: [[UInt8]] = []
    var cachedParentFD: Int32 = -1
    /// Directories to give their final mode and mtime at the end.
    var directories: [(path: [[UInt8]], mode: mode_t, mtime: timespec)] = []
    var directoryIndex: [[[UInt8]]: Int] = [:]
    /// Every symlink extracted: location (joined) → target.
    var symlinks: [[UInt8]: [UInt8]] = [:]
    var symlinkOrder: [[[UInt8]]] = []
    var keepsAnySymlink = false

    init(rootfd: Int32, archiveName: String) {
        self.rootfd = rootfd
        self.archiveName = archiveName
    }

    mutating func closeAll() {
        if cachedParentFD >= 0 && cachedParentFD != rootfd { Sys.close(cachedParentFD) }
        cachedParentFD = -1
    }

    func refuse(_ name: String, _ why: String) -> StoreError {
        StoreError(.refused, "refused to extract \(archiveName): entry '\(name)' \(why). Nothing was extracted.")
    }

    mutating func extractAll(fd: Int32, expected: Digest?) throws(StoreError) -> ExtractSummary {
        var count = 0
        var bytes: Int64 = 0
        let context = try readTarEntries(fd: fd, shown: archiveName, hashing: expected != nil) { (a, entry, index, fail) throws(StoreError) in
            count = index
            bytes += try extractEntry(a, entry, index: index, fail: fail)
        }
        if let expected {
            try context.drain()
            let actual = context.hasher.finalize()
            if actual != expected { throw Store.corrupt(expected, path: archiveName, actual: actual) }
        }
        return ExtractSummary(entries: count, bytes: bytes)
    }

    private mutating func extractEntry(
        _ a: OpaquePointer, _ entry: OpaquePointer, index: Int, fail: (String) -> StoreError
    ) throws(StoreError) -> Int64 {
        guard let rawName = archive_entry_pathname(entry) ?? archive_entry_pathname_utf8(entry) else {
            throw StoreError(.refused, "refused to extract \(archiveName): entry #\(index) has no readable name. Nothing was extracted.")
        }
        let nameBytes = Array(UnsafeBufferPointer(start: rawName, count: strlen(rawName))).map { UInt8(bitPattern: $0) }
        let shown = display(nameBytes)
        if nameBytes.first == 47 { throw refuse(shown, "has an absolute name") }
        let components = try Self.components(nameBytes, shown: shown, refuse: refuse)
        let type = archive_entry_filetype(entry) & 0o170000
        let hardlink = archive_entry_hardlink(entry)
        let perm = mode_t(archive_entry_perm(entry)) & 0o777  // drops setuid, setgid, sticky
        var mtime = timespec(tv_sec: Int(archive_entry_mtime(entry)), tv_nsec: Int(archive_entry_mtime_nsec(entry)))
        if archive_entry_mtime_is_set(entry) == 0 { mtime = timespec(tv_sec: 0, tv_nsec: utimeOmit) }

        if components.isEmpty {
            // "./" or "." : the root itself.
            guard hardlink == nil && type == 0o040000 else { throw refuse(shown, "names the target directory itself but is not a directory") }
            return 0
        }
        if hardlink == nil {
            switch type {
            case 0o100000, 0o040000, 0o120000: break
            case 0o020000: throw refuse(shown, "is a character device; kiln never extracts device nodes")
            case 0o060000: throw refuse(shown, "is a block device; kiln never extracts device nodes")
            case 0o010000: throw refuse(shown, "is a fifo; kiln never extracts fifos")
            case 0o140000: throw refuse(shown, "is a socket; kiln never extracts sockets")
            default: throw refuse(shown, "has an unsupported file type")
            }
        }
        let parentComponents = Array(components.dropLast())
        let name = components.last! + [0]
        let parentfd = try openParent(parentComponents, shown: shown)

        func exists(_ e: Errno) -> StoreError {
            if e == .fileExists { return refuse(shown, "duplicates an earlier entry of the same name (kiln never replaces what an archive already extracted)") }
            return StoreError.system("extract", "\(archiveName): \(shown)", e)
        }

        if let hardlink {
            let targetBytes = Array(UnsafeBufferPointer(start: hardlink, count: strlen(hardlink))).map { UInt8(bitPattern: $0) }
            let targetShown = display(targetBytes)
            if targetBytes.first == 47 { throw refuse(shown, "is a hardlink to the absolute path '\(targetShown)', outside the target") }
            let targetComponents = try Self.components(targetBytes, shown: shown, refuse: { n, why in
                refuse(n, "is a hardlink to '\(targetShown)', which \(why.replacingOccurrences("has ", "has "))") })
            guard !targetComponents.isEmpty else { throw refuse(shown, "is a hardlink to the target directory itself") }
            let tparent = try openDirectory(Array(targetComponents.dropLast()), shown: shown, create: false)
            defer { if tparent != rootfd { Sys.close(tparent) } }
            let tname = targetComponents.last! + [0]
            var st = stat()
            let ok = tname.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { fstatat(tparent, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
            }
            guard ok == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw refuse(shown, "is a hardlink to '\(targetShown)', which is not a regular file extracted before it")
            }
            switch Sys.attempt({
                tname.withUnsafeBufferPointer { t in
                    name.withUnsafeBufferPointer { n in
                        t.withMemoryRebound(to: CChar.self) { tc in
                            n.withMemoryRebound(to: CChar.self) { nc in linkat(tparent, tc.baseAddress!, parentfd, nc.baseAddress!, 0) }
                        }
                    }
                }
            }) {
            case .success: return 0
            case .failure(let e): throw exists(e)
            }
        }

        switch type {
        case 0o040000:
            switch Sys.attempt({ name.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { mkdirat(parentfd, $0.baseAddress!, 0o700) } } }) {
            case .success:
                directoryIndex[components] = directories.count
                directories.append((components, perm, mtime))
            case .failure(let e) where e == .fileExists:
                guard let i = directoryIndex[components] else { throw exists(e) }
                directories[i].mode = perm
                directories[i].mtime = mtime
            case .failure(let e): throw exists(e)
            }
            return 0
        case 0o120000:
            guard let rawTarget = archive_entry_symlink(entry) ?? archive_entry_symlink_utf8(entry) else {
                throw refuse(shown, "is a symlink without a readable target")
            }
            let targetBytes = Array(UnsafeBufferPointer(start: rawTarget, count: strlen(rawTarget))).map { UInt8(bitPattern: $0) }
            symlinks[Self.join(components)] = targetBytes
            symlinkOrder.append(components)
            if !keepsAnySymlink, let why = escape(of: components) { throw refuse(shown, why) }
            switch Sys.attempt({
                (targetBytes + [0]).withUnsafeBufferPointer { t in
                    name.withUnsafeBufferPointer { n in
                        t.withMemoryRebound(to: CChar.self) { tc in
                            n.withMemoryRebound(to: CChar.self) { nc in symlinkat(tc.baseAddress!, parentfd, nc.baseAddress!) }
                        }
                    }
                }
            }) {
            case .success: return 0
            case .failure(let e): throw exists(e)
            }
        default:  // regular file
            let out: Int32
            switch Sys.attempt({
                name.withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) {
                        openat(parentfd, $0.baseAddress!, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm)
                    }
                }
            }) {
            case .success(let f): out = f
            case .failure(let e): throw exists(e)
            }
            defer { Sys.close(out) }
            var written: Int64 = 0
            var buf: UnsafeRawPointer?
            var size = 0
            var offset: la_int64_t = 0
            while true {
                let r = archive_read_data_block(a, &buf, &size, &offset)
                if r == ARCHIVE_EOF { break }
                if r < ARCHIVE_WARN { throw fail("reading the data of '\(shown)'") }
                if size == 0 { continue }
                var done = 0
                while done < size {
                    let n = try Sys.call("write", "\(shown) (extracting \(archiveName))") {
                        pwrite(out, buf! + done, size - done, off_t(offset) + off_t(done))
                    }
                    done += n
                }
                written = max(written, Int64(offset) + Int64(size))
            }
            let expectedSize = archive_entry_size(entry)
            if expectedSize > written {  // sparse tail
                try Sys.call("truncate", shown) { ftruncate(out, off_t(expectedSize)) }
                written = expectedSize
            }
            if perm & processUmask != 0 {  // the umask took bits away at creation
                try Sys.call("set the mode of", shown) { fchmod(out, perm) }
            }
            if mtime.tv_nsec != utimeOmit {
                let times = [mtime, mtime]
                _ = futimens(out, times)
            }
            return written
        }
    }

    /// Splits a name into components, dropping empty and `.` ones; refuses `..`.
    static func components(_ bytes: [UInt8], shown: String, refuse: (String, String) -> StoreError) throws(StoreError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for part in bytes.split(separator: 47, omittingEmptySubsequences: true) {
            if part.elementsEqual([46]) { continue }
            if part.elementsEqual([46, 46]) { throw refuse(shown, "has a '..' component") }
            out.append(Array(part))
        }
        return out
    }

    static func join(_ components: [[UInt8]]) -> [UInt8] {
        Array(components.joined(separator: [47]))
    }

    /// Why the symlink at `location` escapes the target, or nil. Resolution follows the symlinks
    /// extracted so far (a loop or more than 40 hops is refused too).
    func escape(of location: [[UInt8]]) -> String? {
        guard let target = symlinks[Self.join(location)] else { return nil }
        let shownTarget = display(target)
        if target.first == 47 { return "is a symlink to the absolute path '\(shownTarget)', outside the target" }
        var stack = Array(location.dropLast())
        var pending: [[UInt8]] = target.split(separator: 47, omittingEmptySubsequences: true).map { Array($0) }.reversed()
        var hops = 0
        while let c = pending.popLast() {
            if c == [46] { continue }
            if c == [46, 46] {
                if stack.isEmpty { return "is a symlink to '\(shownTarget)', which points outside the target" }
                stack.removeLast()
                continue
            }
            stack.append(c)
            if let t = symlinks[Self.join(stack)] {
                hops += 1
                if hops > 40 { return "is a symlink to '\(shownTarget)', which loops" }
                stack.removeLast()
                if t.first == 47 { return "is a symlink to '\(shownTarget)', which leads to an absolute path outside the target" }
                pending += t.split(separator: 47, omittingEmptySubsequences: true).map { Array($0) }.reversed()
            }
        }
        return nil
    }

    /// The parent directory of an entry, created when missing, never through a symlink.
    mutating func openParent(_ components: [[UInt8]], shown: String) throws(StoreError) -> Int32 {
        if components.isEmpty { return rootfd }
        if cachedParentFD >= 0 && components == cachedParent { return cachedParentFD }
        let fd = try openDirectory(components, shown: shown, create: true)
        closeAll()
        cachedParent = components
        cachedParentFD = fd
        return fd
    }

    /// Opens `components` under the root one at a time with `O_NOFOLLOW`, creating missing ones.
    mutating func openDirectory(_ components: [[UInt8]], shown: String, create: Bool) throws(StoreError) -> Int32 {
        var fd = rootfd
        var done: [[UInt8]] = []
        for c in components {
            done.append(c)
            let cname = c + [0]
            func openIt() -> Result<Int32, Errno> {
                Sys.attempt {
                    cname.withUnsafeBufferPointer { p in
                        p.withMemoryRebound(to: CChar.self) { openat(fd, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                    }
                }
            }
            var result = openIt()
            if case .failure(let e) = result, e == .noSuchFileOrDirectory, create {
                _ = cname.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { mkdirat(fd, $0.baseAddress!, 0o700) } }
                if directoryIndex[done] == nil {
                    directoryIndex[done] = directories.count
                    directories.append((done, 0o755, timespec(tv_sec: 0, tv_nsec: utimeOmit)))
                }
                result = openIt()
            }
            let next: Int32
            switch result {
            case .success(let f): next = f
            case .failure(let e):
                if fd != rootfd { Sys.close(fd) }
                let via = display(Self.join(done))
                if e == .tooManySymbolicLinkLevels || e == .notDirectory {
                    if symlinks[Self.join(done)] != nil {
                        throw refuse(shown, "would be written through the symlink '\(via)'")
                    }
                    throw refuse(shown, "would be written below '\(via)', which is not a directory")
                }
                if e == .noSuchFileOrDirectory { throw refuse(shown, "refers to '\(via)', which the archive did not create") }
                throw StoreError.system("open", "\(archiveName): \(via)", e)
            }
            if fd != rootfd { Sys.close(fd) }
            fd = next
        }
        return fd
    }

    /// Checks every symlink again against the final tree, then gives directories their modes and times.
    mutating func finish() throws(StoreError) {
        for location in symlinkOrder where !keepsAnySymlink {
            if let why = escape(of: location) { throw refuse(display(Self.join(location)), why) }
        }
        closeAll()
        for d in directories.reversed() {
            let cname = Self.join(d.path) + [0]
            try Sys.call("set the mode of", display(Self.join(d.path))) {
                cname.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { fchmodat(rootfd, $0.baseAddress!, d.mode, 0) } }
            }
            if d.mtime.tv_nsec != utimeOmit {
                let times = [d.mtime, d.mtime]
                _ = cname.withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { utimensat(rootfd, $0.baseAddress!, times, AT_SYMLINK_NOFOLLOW) }
                }
            }
        }
    }
}

/// The libarchive client data for reading: the fd, a 1 MiB buffer and the digest of what was read.
final class ReadContext {
    let fd: Int32
    let name: String
    let hashing: Bool
    var hasher = Hasher256()
    var error: StoreError?
    var sawData = false
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)

    init(fd: Int32, name: String, hashing: Bool) {
        self.fd = fd
        self.name = name
        self.hashing = hashing
    }

    deinit { buffer.deallocate() }

    func fill() -> Int {
        switch Sys.attempt({ read(fd, buffer.baseAddress!, buffer.count) }) {
        case .success(let n):
            if n > 0 { sawData = true }
            if hashing { hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
            return n
        case .failure(let e):
            error = StoreError.system("read", name, e)
            return -1
        }
    }

    /// Reads what libarchive left unread (padding after the end marker), for the digest.
    func drain() throws(StoreError) {
        while true {
            let n = fill()
            if n < 0 { throw error! }
            if n == 0 { return }
        }
    }
}

let readCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int = {
    _, client, out in
    let context = Unmanaged<ReadContext>.fromOpaque(client!).takeUnretainedValue()
    let n = context.fill()
    out!.pointee = UnsafeRawPointer(context.buffer.baseAddress!)
    return n
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        self  // (kept simple: messages are composed without replacement)
    }
}

/// The process's umask, from /proc/self/status (reading it with umask(2) would mean setting it,
/// racing other threads that create files).
private let processUmask: mode_t = {
    let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
    if fd >= 0 {
        defer { Sys.close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n > 0 {
            let text = String(decoding: buf[0..<n], as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("Umask:") {
                if let m = mode_t(line.dropFirst(6).trimmingPrefix(while: { $0 == " " || $0 == "\t" }), radix: 8) { return m }
            }
        }
    }
    let m = umask(0o022)
    umask(m)
    return m
}()

/// `UTIME_OMIT` from <sys/stat.h> (a macro Swift does not import).
private let utimeOmit = (1 << 30) - 2

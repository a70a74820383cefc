import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Workspace file operations the engine needs (FoundationEssentials' FileManager: no ICU).
/// File-type checks use stat/lstat directly: `FileManager.attributesOfItem` also lists extended
/// attributes and builds a dictionary, and a no-op run makes several such checks per stage.
enum WorkspaceFiles {
    /// The file type bits of `path` (S_IFDIR, S_IFLNK, …), following symlinks or not; nil if absent.
    private static func fileType(_ path: String, follow: Bool) -> mode_t? {
        var st = stat()
        let rc = follow ? stat(path, &st) : lstat(path, &st)
        return rc == 0 ? st.st_mode & S_IFMT : nil
    }

    static var fm: FileManager { FileManager.default }

    static func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func exists(_ path: String) -> Bool { fm.fileExists(atPath: path) }

    /// True for a directory, following a symlink.
    static func isDirectory(_ path: String) -> Bool {
        fileType(path, follow: true) == S_IFDIR
    }

    /// True if `path` itself (not followed) exists: a dangling symlink counts.
    static func existsNoFollow(_ path: String) -> Bool {
        fileType(path, follow: false) != nil
    }

    static func makeDirectories(_ path: String) throws(EngineError) {
        do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) }
        catch { throw EngineError(.io, "cannot create the directory \(path): \(error). Check its parent's permissions.") }
    }

    static func remove(_ path: String) throws(EngineError) {
        guard existsNoFollow(path) else { return }
        do { try fm.removeItem(atPath: path) }
        catch { throw EngineError(.io, "cannot remove \(path): \(error). Check its permissions.") }
    }

    static func move(_ from: String, to: String) throws(EngineError) {
        do { try fm.moveItem(atPath: from, toPath: to) }
        catch { throw EngineError(.io, "cannot move \(from) to \(to): \(error).") }
    }

    static func createEmptyFile(_ path: String) throws(EngineError) {
        guard fm.createFile(atPath: path, contents: Data()) else {
            throw EngineError(.io, "cannot create \(path). Check its parent's permissions.")
        }
    }

    static func read(_ path: String) -> [UInt8]? {
        fm.contents(atPath: path).map { Array($0) }
    }

    /// Children of a directory (names), sorted; empty when unreadable.
    static func children(_ path: String) -> [String] {
        ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    static func isSymlink(_ path: String) -> Bool {
        fileType(path, follow: false) == S_IFLNK
    }

    /// True for a real directory (a symlink to one is not descended into).
    static func isRealDirectory(_ path: String) -> Bool {
        fileType(path, follow: false) == S_IFDIR
    }

    /// Every path under `root/start` (relative to `root`), files and directories, pre-order,
    /// skipping what `skip` says (not descending into it either).
    static func walk(root: String, start: String, skip: (String) -> Bool, visit: (String, Bool) -> Void) {
        let base = start.isEmpty ? root : join(root, start)
        for name in children(base) {
            let rel = start.isEmpty ? name : start + "/" + name
            if skip(rel) { continue }
            let isDir = isRealDirectory(join(root, rel))
            visit(rel, isDir)
            if isDir { walk(root: root, start: rel, skip: skip, visit: visit) }
        }
    }
}

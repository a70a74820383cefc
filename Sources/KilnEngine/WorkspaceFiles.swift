import FoundationEssentials

/// Workspace file operations the engine needs (FoundationEssentials' FileManager: no ICU).
enum WorkspaceFiles {
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
        guard let attrs = try? fm.attributesOfItem(atPath: path) else { return false }
        if (attrs[.type] as? FileAttributeType) == .typeSymbolicLink,
           let target = try? fm.destinationOfSymbolicLink(atPath: path) {
            return isDirectory(target.hasPrefix("/") ? target : join(parent(path), target))
        }
        return (attrs[.type] as? FileAttributeType) == .typeDirectory
    }

    /// True if `path` itself (not followed) exists: a dangling symlink counts.
    static func existsNoFollow(_ path: String) -> Bool {
        (try? fm.attributesOfItem(atPath: path)) != nil
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
        ((try? fm.attributesOfItem(atPath: path))?[.type] as? FileAttributeType) == .typeSymbolicLink
    }

    /// True for a real directory (a symlink to one is not descended into).
    static func isRealDirectory(_ path: String) -> Bool {
        guard let attrs = try? fm.attributesOfItem(atPath: path) else { return false }
        return (attrs[.type] as? FileAttributeType) == .typeDirectory
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

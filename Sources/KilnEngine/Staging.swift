#if canImport(Glibc)
import Glibc
#endif
import KilnRecipe

/// A locked staging folder in the store's `tmp/` (a concurrent kiln's clean-up skips locked ones).
final class Staging {
    let root: String
    let work: String
    private let fd: Int32

    init(in tmp: String) throws(EngineError) {
        root = WorkspaceFiles.join(tmp, "stage.\(getpid()).\(UInt64.random(in: 0...UInt64.max))")
        work = WorkspaceFiles.join(root, "work")
        try WorkspaceFiles.makeDirectories(work)
        fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = flock(fd, LOCK_EX) }
    }

    func remove() {
        try? WorkspaceFiles.remove(root)
        if fd >= 0 { close(fd) }
    }
}

extension Staging {
    /// Paths under `work` that are neither declared outputs (or inside one), input placeholders,
    /// nor folders leading to those.
    static func undeclaredWrites(in work: String, outputs: [WorkspacePath], placeholders: Set<String>) -> [String] {
        let expected = outputs.map(\.path) + placeholders
        var stray: [String] = []
        WorkspaceFiles.walk(root: work, start: "", skip: { rel in
            placeholders.contains(rel) || outputs.contains { rel == $0.path || rel.hasPrefix($0.path + "/") }
        }) { rel, isDir in
            if isDir && expected.contains(where: { $0.hasPrefix(rel + "/") }) { return }
            stray.append(isDir ? rel + "/" : rel)
        }
        return stray
    }
}

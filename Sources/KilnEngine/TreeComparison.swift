#if canImport(Glibc)
import Glibc
#endif
import KilnStore

/// Compares two extracted trees file by file (for a non-reproducible output's report).
enum TreeComparison {
    struct Difference {
        var path: String
        var change: String
    }

    /// Differences between the trees at `a` (recorded) and `b` (rebuilt), sorted by path.
    static func compare(_ a: String, _ b: String) -> [Difference] {
        let left = entries(a), right = entries(b)
        var out: [Difference] = []
        for path in Set(left.keys).union(right.keys).sorted() {
            switch (left[path], right[path]) {
            case (nil, _?): out.append(Difference(path: path, change: "only in the rebuild"))
            case (_?, nil): out.append(Difference(path: path, change: "only in the record"))
            case (let l?, let r?):
                if l.kind != r.kind { out.append(Difference(path: path, change: "type differs (\(l.kind) → \(r.kind))")) }
                else if l.digest != r.digest { out.append(Difference(path: path, change: l.kind == "symlink" ? "link target differs" : "content differs")) }
                else if l.executable != r.executable { out.append(Difference(path: path, change: "executable bit differs")) }
            default: break
            }
        }
        return out
    }

    struct Entry {
        var kind: String
        var digest: Digest?
        var executable: Bool
    }

    static func entries(_ root: String) -> [String: Entry] {
        var out: [String: Entry] = [:]
        func add(_ rel: String, _ full: String) {
            var st = stat()
            guard lstat(full, &st) == 0 else { return }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: out[rel] = Entry(kind: "dir", digest: nil, executable: false)
            case S_IFLNK: out[rel] = Entry(kind: "symlink", digest: try? TreeHasher.digest(of: full).digest, executable: false)
            default: out[rel] = Entry(kind: "file", digest: try? TreeHasher.digest(of: full).digest, executable: st.st_mode & S_IXUSR != 0)
            }
        }
        if !WorkspaceFiles.isRealDirectory(root) { add(".", root); return out }
        WorkspaceFiles.walk(root: root, start: "", skip: { _ in false }) { rel, _ in add(rel, WorkspaceFiles.join(root, rel)) }
        return out
    }
}

/// diffoscope's text report on two trees, where diffoscope is installed (it explains *how*
/// binary files differ: pickles, archives, ELF). Capped, with a time limit.
enum Diffoscope {
    static func report(_ a: String, _ b: String) -> String? {
        guard let tool = Subprocess.find("diffoscope") else { return nil }
        // Directory metadata (the extraction's own mtimes) is noise here: the archives' entries
        // are compared, not the folders they were unpacked into.
        let output = Subprocess.capture([tool, "--no-progress", "--exclude-directory-metadata=recursive", "--text", "-", a, b],
                                        limit: 64 << 10, timeoutSeconds: 120)
        let parent = a.hasSuffix("/recorded") ? String(a.dropLast("recorded".count)) : ""
        return output.map { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            return parent.isEmpty ? text : text.replacing(parent, with: "")
        }
    }
}

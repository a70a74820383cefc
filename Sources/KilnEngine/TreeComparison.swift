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

/// Runs a helper program (not sandboxed: diffoscope, git) and captures its standard output.
enum Subprocess {
    static func find(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// The first `limit` bytes of `argv`'s stdout (stderr discarded); nil if it could not start.
    /// It is killed after `timeoutSeconds`.
    static func capture(_ argv: [String], limit: Int, timeoutSeconds: Int) -> [UInt8]? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, &cargs, environ)
        close(fds[1])
        defer { close(fds[0]) }
        guard spawned == 0 else { return nil }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = time(nil) + timeoutSeconds
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        while time(nil) < deadline {
            let ready = poll(&pfd, 1, 1000)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if out.count < limit { out += buffer[..<min(n, limit - out.count)] }
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return out
    }
}

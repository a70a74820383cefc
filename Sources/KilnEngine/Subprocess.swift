#if canImport(Glibc)
import Glibc
#endif

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

    /// Starts `argv[0]` (a path, or a name looked up in PATH) with stdin and stderr on /dev/null,
    /// stdout on `stdout` (else /dev/null), an empty signal mask (kiln blocks SIGINT and SIGTERM
    /// in its own threads), and kiln's environment; nil if it could not start.
    static func spawn(_ argv: [String], stdout: Int32? = nil) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let stdout {
            posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
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
        guard posix_spawnp(&pid, argv[0], &actions, &attributes, &cargs, environ) == 0 else { return nil }
        return pid
    }

    /// The first `limit` bytes of `argv`'s stdout (stderr discarded); nil if it could not start.
    /// It is killed after `timeoutSeconds`.
    static func capture(_ argv: [String], limit: Int, timeoutSeconds: Int) -> [UInt8]? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let spawned = spawn(argv, stdout: fds[1])
        close(fds[1])
        defer { close(fds[0]) }
        guard let pid = spawned else { return nil }
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

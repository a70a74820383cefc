import CKilnSandbox  // sigset_t comes through it too (MemberImportVisibility)
#if canImport(Glibc)
import Glibc
#endif

/// Runs a helper program (posix_spawn; no Foundation), passing its stderr and stdout on line by line.
enum ProcessRunner {
    static func find(_ program: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        for dir in (path + ":/usr/sbin:/sbin").split(separator: ":") {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Returns the exit status (128+N for a signal) and the last 40 lines it printed.
    static func run(_ argv: [String], environment: [String: String], line: (String) -> Void) -> (Int32, [String]) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return (127, ["pipe failed: errno \(errno)"]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var env: [String] = []
        var i = 0
        while let entry = environ[i] { env.append(String(cString: entry)); i += 1 }
        env = env.filter { e in !environment.keys.contains { e.hasPrefix($0 + "=") } } + environment.map { "\($0.key)=\($0.value)" }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { (cArgv + cEnv).forEach { free($0) } }
        // An empty signal mask and default dispositions: kiln's threads block some signals, and
        // a child inheriting that (apt, dpkg) could hang waiting for SIGCHLD.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return (127, ["cannot start \(argv[0]): errno \(rc)"])
        }
        var tail: [String] = []
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buffer[0..<n]
            while let nl = pending.firstIndex(where: { $0 == 10 || $0 == 13 }) {
                let text = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                if text.isEmpty { continue }
                line(text)
                tail.append(text)
                if tail.count > 40 { tail.removeFirst() }
            }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, tail)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

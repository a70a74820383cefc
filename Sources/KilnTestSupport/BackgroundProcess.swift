import Foundation

/// A program started in the background, its stdout and stderr going to files, so a test can watch
/// what it prints while it runs, signal it, and wait for it with a deadline.
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    public let stdoutPath: String
    public let stderrPath: String
    private var status: Int32?

    /// Starts `executable`, as `ChildProcess.run` does: an empty signal mask and default
    /// dispositions (the test runner's would otherwise be inherited), stdin from /dev/null.
    public init(_ executable: String, _ arguments: [String], outputDirectory: String) throws {
        stdoutPath = outputDirectory + "/stdout"
        stderrPath = outputDirectory + "/stderr"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = ChildProcess.cleanSignalAttributes()
        defer { posix_spawnattr_destroy(&attr) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr, argv, envp)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        self.pid = pid
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var s: Int32 = 0
            waitpid(pid, &s, 0)
        }
    }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Polls until `condition` holds on what it printed so far, or `seconds` pass. Blocks: call it
    /// on a thread of its own (`onThread`), not on the two cooperative threads that other suites'
    /// synchronous work can hold for many seconds.
    public func waitForOutput(seconds: Double, _ condition: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(stdout) { return true }
            if exitStatus() != nil { return condition(stdout) }
            usleep(20_000)
        }
        return false
    }

    /// Waits at most `seconds` for it to end (blocking, as `waitForOutput`); the exit code,
    /// 128+N for signal N, or nil if it is still running.
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let code = exitStatus() { return code }
            usleep(10_000)
        }
        return exitStatus()
    }

    /// Runs `body` on a new thread and returns what it returns.
    public static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: body()) }
        }
    }

    private func exitStatus() -> Int32? {
        if let status { return Self.code(status) }
        var s: Int32 = 0
        let rc = waitpid(pid, &s, WNOHANG)
        guard rc == pid else { return nil }
        status = s
        return Self.code(s)
    }

    private static func code(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

import Foundation

/// Runs programs for tests and captures what they print.
public enum ChildProcess {
    public struct Output: Sendable, CustomStringConvertible {
        public var status: Int32
        /// True when the process was killed by a signal (then `status` is the signal number).
        public var signaled: Bool
        public var stdout: String
        public var stderr: String

        public var description: String { "status \(status)\(signaled ? " (signal)" : "")\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    /// The `kiln` executable built beside the running test bundle.
    public static var kilnPath: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("kiln").path
    }

    /// Runs `executable` with `arguments` to completion.
    ///
    /// Spawned with `posix_spawn` and an empty signal mask and default dispositions: the test
    /// runner's threads block signals such as SIGCHLD, and a child that inherited that mask (as
    /// Foundation's `Process` lets it) would hang in `wait` in a shell script.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        currentDirectory: String? = nil, stdin: Data? = nil
    ) -> Output {
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        // Close-on-exec from the start: a child spawned meanwhile by another test's thread must not
        // inherit these pipes (it would hold our stdout open until it exits).
        guard makePipe(&inPipe), makePipe(&outPipe), makePipe(&errPipe) else {
            return Output(status: -1, signaled: false, stdout: "", stderr: "pipe2 failed: errno \(errno)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attr = ChildProcess.cleanSignalAttributes()
        defer { posix_spawnattr_destroy(&attr) }

        let env = environment ?? ProcessInfo.processInfo.environment
        // The working directory is set by a shell that then execs the program.
        var program = executable
        var words = [executable] + arguments
        if let currentDirectory {
            program = "/bin/sh"
            words = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", currentDirectory] + words
        }
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, program, &actions, &attr, argv, envp)
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        if rc != 0 {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            return Output(status: -1, signaled: false, stdout: "", stderr: "could not start \(executable): errno \(rc)")
        }
        // Feed stdin and drain stderr on other threads so no pipe fills up.
        let input = stdin ?? Data()
        let inFD = inPipe[1], errFD = errPipe[0], outFD = outPipe[0]
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            input.withUnsafeBytes { b in
                var off = 0
                while off < b.count {
                    let n = write(inFD, b.baseAddress! + off, b.count - off)
                    if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                    off += n
                }
            }
            close(inFD)
        }
        DispatchQueue.global().async(group: group) {
            errData = readAll(errFD)
        }
        let outData = readAll(outFD)
        group.wait()
        close(outFD)
        close(errFD)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        return Output(
            status: signaled ? status & 0x7f : (status >> 8) & 0xff,
            signaled: signaled,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// pipe2(O_CLOEXEC), looked up at run time (Glibc's Swift module does not declare it).
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pipe2") else {
            guard pipe(&fds) == 0 else { return false }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return true
        }
        let pipe2 = unsafeBitCast(symbol, to: Pipe2.self)
        return fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress!, O_CLOEXEC) } == 0
    }

    private static func readAll(_ fd: Int32) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    /// Spawn attributes for a child started with no signal blocked and the usual signals at
    /// their defaults, whatever the test runner's threads block or ignore. The caller destroys them.
    static func cleanSignalAttributes() -> posix_spawnattr_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTTIN, SIGTTOU] {
            sigaddset(&defaults, sig)
        }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return attr
    }

    /// Runs the built `kiln` with `arguments`.
    @discardableResult
    public static func kiln(_ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil) -> Output {
        run(kilnPath, arguments, environment: environment, currentDirectory: currentDirectory)
    }

    /// Runs `/bin/sh -c script`.
    @discardableResult
    public static func shell(_ script: String, currentDirectory: String? = nil, environment: [String: String]? = nil) -> Output {
        run("/bin/sh", ["-c", script], environment: environment, currentDirectory: currentDirectory)
    }
}

import Foundation
import KilnTestSupport
import Testing

/// Who runs kiln in a test: the isolation suite runs as root and as an unprivileged user.
enum Caller: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case root
    case nobody

    var testDescription: String { rawValue }

    /// The unprivileged run needs root to switch to uid 65534 (CI runs as root). A non-root
    /// developer runs the suite as themselves, which is the unprivileged case already.
    static var available: [Caller] {
        getuid() == 0 ? [.root, .nobody] : [.nobody]
    }
}

/// Files the sandbox tests share: a static probe and a copy of kiln, in a directory every user
/// can read (the build folder may be under a private home).
enum SandboxFixture {
    static let directory: String = {
        let path = "/tmp/kiln-sandbox-tests-\(getpid())"
        removeStaleDirectories()
        try? FileManager.default.removeItem(atPath: path)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o755)
        return path
    }()

    /// The probe, compiled with `cc -static` so it needs nothing from the sandbox's file system.
    static let probe: String = {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/probe.c").path
        let output = directory + "/probe"
        var errors: [String] = []
        for compiler in ["cc", "gcc", "clang"] {
            let result = ChildProcess.run("/usr/bin/env", [compiler, "-static", "-O1", "-o", output, source])
            if result.status == 0 {
                chmod(output, 0o755)
                return output
            }
            errors.append("\(compiler): \(result.stderr)")
        }
        fatalError("cannot compile the probe (install gcc and libc6-dev): \(errors.joined(separator: "\n"))")
    }()

    /// kiln, copied where the unprivileged user can execute it.
    static let kiln: String = {
        let copy = directory + "/kiln"
        try? FileManager.default.removeItem(atPath: copy)
        try! FileManager.default.copyItem(atPath: ChildProcess.kilnPath, toPath: copy)
        chmod(copy, 0o755)
        return copy
    }()

    /// A scratch directory the unprivileged user can write to.
    static func scratch(_ label: String) -> ScratchDirectory {
        let scratch = ScratchDirectory(label)
        chmod(scratch.path, 0o777)
        return scratch
    }

    private static func removeStaleDirectories() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix("kiln-sandbox-tests-") {
            if let pid = Int32(name.dropFirst("kiln-sandbox-tests-".count)), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(atPath: "/tmp/" + name)
            }
        }
    }

    /// Runs `kiln sandbox run OPTIONS -- /probe ARGS` as `caller`, the probe mounted at /probe.
    static func probe(_ caller: Caller, options: [String] = [], _ arguments: [String], environment: [String: String]? = nil) -> ChildProcess.Output {
        kiln(caller, ["sandbox", "run", "--ro-bind", probe, "/probe"] + options + ["--", "/probe"] + arguments, environment: environment)
    }

    /// Runs kiln as `caller`.
    static func kiln(_ caller: Caller, _ arguments: [String], environment: [String: String]? = nil) -> ChildProcess.Output {
        switch caller {
        case .root:
            return ChildProcess.run(kiln, arguments, environment: environment)
        case .nobody:
            guard getuid() == 0 else { return ChildProcess.run(kiln, arguments, environment: environment) }
            return ChildProcess.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", kiln] + arguments, environment: environment)
        }
    }
}

/// A program started in the background with its output sent to /dev/null and an empty signal
/// mask (like ChildProcess.run; Foundation's `Process` passes on the runner's blocked signals).
struct BackgroundProcess {
    let pid: pid_t

    init(_ argv: [String]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        self.pid = pid
    }

    /// Waits for the process; returns its exit status, or 128+N for signal N.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

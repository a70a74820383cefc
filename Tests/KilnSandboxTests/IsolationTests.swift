import Foundation
import KilnTestSupport
import Testing

/// Listeners on the host that the sandbox must not reach: a TCP port on 127.0.0.1 and an
/// abstract unix socket. They stay open for the whole test process.
enum HostListeners {
    static let tcpPort: Int = {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, size) } }
        listen(fd, 16)
        withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &size) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }()

    static let abstractName: String = {
        let name = "kiln-test-\(getpid())"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { bytes in
            for (i, byte) in name.utf8.enumerated() { bytes[i + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.utf8.count)
        withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, length) } }
        listen(fd, 16)
        return name
    }()
}

/// One attack or observation: the probe's arguments, extra kiln options, and the one line it must print.
struct ProbeCase: CustomTestStringConvertible, Sendable {
    var name: String
    var arguments: @Sendable (_ scratch: String) -> [String]
    var options: @Sendable (_ scratch: String) -> [String] = { _ in [] }
    var expected: String
    /// Where an unprivileged caller is stopped earlier, by file permissions, and sees another errno.
    var expectedUnprivileged: String?

    func expected(for caller: Caller) -> String {
        caller == .nobody ? expectedUnprivileged ?? expected : expected
    }

    var testDescription: String { name }
}

/// Host files every case may use: an input mounted read-only and an output mounted writable,
/// owned by the caller so that only the mount, not file permissions, stops writes.
private func makeScratch(owner caller: Caller) -> ScratchDirectory {
    let scratch = SandboxFixture.scratch("kiln-isolation")
    try? FileManager.default.createDirectory(atPath: scratch("in"), withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: scratch("in/data.txt"), contents: Data("input".utf8))
    try? FileManager.default.createDirectory(atPath: scratch("out"), withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: scratch("secret.txt"), contents: Data("secret".utf8))
    chmod(scratch("in"), 0o755)
    chmod(scratch("in/data.txt"), 0o644)
    chmod(scratch("out"), 0o777)
    if caller == .nobody && getuid() == 0 {
        for path in ["in", "in/data.txt", "out"] { chown(scratch(path), 65534, 65534) }
    }
    return scratch
}

private let io: @Sendable (String) -> [String] = { scratch in ["--ro-bind", scratch + "/in", "/work/in", "--bind", scratch + "/out", "/work/out"] }

let isolationCases: [ProbeCase] = [
    // Files: only what is declared exists, and read-only inputs stay read-only.
    ProbeCase(name: "undeclared host file is absent", arguments: { ["read", $0 + "/secret.txt"] }, expected: "errno:ENOENT"),
    ProbeCase(name: "host /etc/shadow is absent", arguments: { _ in ["read", "/etc/shadow"] }, expected: "errno:ENOENT"),
    ProbeCase(name: "host /root is absent", arguments: { _ in ["read", "/root"] }, expected: "errno:ENOENT"),
    ProbeCase(name: "declared input is readable", arguments: { _ in ["read", "/work/in/data.txt"] }, options: io, expected: "ok"),
    ProbeCase(name: "write to read-only input", arguments: { _ in ["write", "/work/in/data.txt"] }, options: io, expected: "errno:EROFS"),
    ProbeCase(name: "chmod read-only input", arguments: { _ in ["chmod", "/work/in/data.txt", "777"] }, options: io, expected: "errno:EROFS"),
    ProbeCase(name: "unlink read-only input", arguments: { _ in ["unlink", "/work/in/data.txt"] }, options: io, expected: "errno:EROFS"),
    ProbeCase(name: "create in read-only input", arguments: { _ in ["create", "/work/in/new"] }, options: io, expected: "errno:EROFS"),
    ProbeCase(name: "remount read-only input writable", arguments: { _ in ["remount-rw", "/work/in"] }, options: io, expected: "errno:EPERM"),
    ProbeCase(name: "writable output is writable", arguments: { _ in ["create", "/work/out/new"] }, options: io, expected: "ok"),
    ProbeCase(name: "sandbox root is read-only", arguments: { _ in ["create", "/evil"] }, expected: "errno:EROFS"),
    ProbeCase(name: "toolchain is read-only", arguments: { _ in ["create", "/usr/evil"] }, expected: "errno:EROFS"),
    ProbeCase(name: "/tmp is writable", arguments: { _ in ["create", "/tmp/scratch"] }, expected: "ok"),
    // Network: loopback only.
    ProbeCase(name: "host loopback TCP unreachable", arguments: { _ in ["tcp", "127.0.0.1", String(HostListeners.tcpPort)] }, expected: "errno:ECONNREFUSED"),
    ProbeCase(name: "host abstract unix socket unreachable", arguments: { _ in ["abstract", HostListeners.abstractName] }, expected: "errno:ECONNREFUSED"),
    ProbeCase(name: "outside address unreachable", arguments: { _ in ["tcp", "192.0.2.1", "80"] }, expected: "errno:ENETUNREACH"),
    ProbeCase(name: "with --network host the host is reachable (control)", arguments: { _ in ["tcp", "127.0.0.1", String(HostListeners.tcpPort)] }, options: { _ in ["--network", "host"] }, expected: "ok"),
    // Processes.
    ProbeCase(name: "kill a host pid", arguments: { _ in ["kill", String(getpid())] }, expected: "errno:ESRCH"),
    ProbeCase(name: "ptrace a host pid", arguments: { _ in ["ptrace", String(getpid())] }, expected: "errno:EPERM"),
    ProbeCase(name: "ptrace traceme", arguments: { _ in ["ptrace-traceme"] }, expected: "errno:EPERM"),
    ProbeCase(name: "only pid 1 and the command are visible", arguments: { _ in ["pids"] }, expected: "count:2"),
    ProbeCase(name: "pid 1 reaps orphaned zombies", arguments: { _ in ["orphan-zombies"] }, expected: "zombies:0"),
    // Namespaces and mounts.
    ProbeCase(name: "mount a tmpfs", arguments: { _ in ["mount-tmpfs", "/tmp"] }, expected: "errno:EPERM"),
    ProbeCase(name: "nested user namespace (unshare)", arguments: { _ in ["unshare-user"] }, expected: "errno:EPERM"),
    ProbeCase(name: "nested mount namespace (unshare)", arguments: { _ in ["unshare-mount"] }, expected: "errno:EPERM"),
    ProbeCase(name: "nested user namespace (clone)", arguments: { _ in ["clone-newuser"] }, expected: "errno:EPERM"),
    ProbeCase(name: "clone3 falls back", arguments: { _ in ["clone3"] }, expected: "errno:ENOSYS"),
    ProbeCase(name: "setns", arguments: { _ in ["setns"] }, expected: "errno:EPERM"),
    ProbeCase(name: "chroot", arguments: { _ in ["chroot"] }, expected: "errno:EPERM"),
    ProbeCase(name: "pivot_root", arguments: { _ in ["pivot-root"] }, expected: "errno:EPERM"),
    ProbeCase(name: "sethostname", arguments: { _ in ["sethostname"] }, expected: "errno:EPERM"),
    ProbeCase(name: "hostname is kiln", arguments: { _ in ["hostname"] }, expected: "kiln"),
    // Devices and kernel interfaces.
    ProbeCase(name: "/dev/mem is absent", arguments: { _ in ["read", "/dev/mem"] }, expected: "errno:ENOENT"),
    ProbeCase(name: "mknod a device", arguments: { _ in ["mknod", "/tmp/null2"] }, expected: "errno:EPERM"),
    ProbeCase(name: "keyctl", arguments: { _ in ["keyctl"] }, expected: "errno:EPERM"),
    ProbeCase(name: "bpf", arguments: { _ in ["bpf"] }, expected: "errno:EPERM"),
    ProbeCase(name: "perf_event_open", arguments: { _ in ["perf"] }, expected: "errno:EPERM"),
    ProbeCase(name: "io_uring_setup", arguments: { _ in ["io-uring"] }, expected: "errno:EPERM"),
    ProbeCase(name: "userfaultfd", arguments: { _ in ["userfaultfd"] }, expected: "errno:EPERM"),
    ProbeCase(name: "kexec_load", arguments: { _ in ["kexec"] }, expected: "errno:EPERM"),
    ProbeCase(name: "reboot", arguments: { _ in ["reboot"] }, expected: "errno:EPERM"),
    ProbeCase(name: "open_by_handle_at", arguments: { _ in ["open-by-handle"] }, expected: "errno:EPERM"),
    ProbeCase(name: "clock_settime", arguments: { _ in ["settime"] }, expected: "errno:EPERM"),
    ProbeCase(name: "syslog", arguments: { _ in ["syslog"] }, expected: "errno:EPERM"),
    ProbeCase(name: "x32 syscall table", arguments: { _ in ["x32"] }, expected: "errno:EPERM"),
    ProbeCase(name: "32-bit syscall table (int 0x80)", arguments: { _ in ["int80"] }, expected: "errno:EPERM"),
    ProbeCase(name: "write /proc/self/exe", arguments: { _ in ["write", "/proc/self/exe"] }, expected: "errno:ETXTBSY", expectedUnprivileged: "errno:EACCES"),
    ProbeCase(name: "write /proc/sys", arguments: { _ in ["write", "/proc/sys/kernel/hostname"] }, expected: "errno:EROFS", expectedUnprivileged: "errno:EACCES"),
    ProbeCase(name: "write /proc/sysrq-trigger", arguments: { _ in ["write", "/proc/sysrq-trigger"] },
              expected: FileManager.default.fileExists(atPath: "/proc/sysrq-trigger") ? "errno:EROFS" : "errno:ENOENT"),
    // Credentials and process state.
    ProbeCase(name: "no capabilities, no_new_privs, seccomp", arguments: { _ in ["caps"] },
              expected: "eff:0000000000000000 prm:0000000000000000 inh:0000000000000000 bnd:0000000000000000 amb:0000000000000000 nnp:1 seccomp:2"),
    ProbeCase(name: "fixed uid and gid", arguments: { _ in ["id"] }, expected: "uid:1000 gid:1000"),
    ProbeCase(name: "umask 022", arguments: { _ in ["umask"] }, expected: "umask:022"),
    ProbeCase(name: "own session", arguments: { _ in ["session"] }, expected: "session:own"),
    ProbeCase(name: "TIOCSTI", arguments: { _ in ["tiocsti"] }, expected: "errno:EPERM"),
    ProbeCase(name: "TIOCSTI with high bits set", arguments: { _ in ["tiocsti-high-bits"] }, expected: "errno:EPERM"),
    ProbeCase(name: "setuid chmod", arguments: { _ in ["create-setuid", "/tmp/suid"] }, expected: "errno:EPERM"),
    ProbeCase(name: "only stdin, stdout, stderr are open", arguments: { _ in ["fds"] }, expected: "fds:0,1,2"),
    // Limits.
    ProbeCase(name: "/tmp exhaustion stops at its size", arguments: { _ in ["fill", "/tmp/big"] }, options: { _ in ["--tmpfs", "/tmp:8M"] }, expected: "errno:ENOSPC mib:8"),
    ProbeCase(name: "raise the pid ceiling", arguments: { _ in ["write", "/proc/sys/kernel/pid_max"] }, expected: "errno:EACCES"),
    ProbeCase(name: "fork bomb stops at --pids", arguments: { _ in ["forkbomb", "100000"] }, options: { _ in ["--pids", "32"] }, expected: "errno:EAGAIN"),
    ProbeCase(name: "--cpus pins affinity", arguments: { _ in ["affinity"] }, options: { _ in ["--cpus", "1"] }, expected: "cpus:1"),
]

@Suite("Isolation: probes inside the sandbox, as root and as an unprivileged user")
struct IsolationTests {
    @Test(arguments: Caller.available, isolationCases)
    func probe(caller: Caller, probe: ProbeCase) {
        let scratch = makeScratch(owner: caller)
        let output = SandboxFixture.probe(caller, options: probe.options(scratch.path), probe.arguments(scratch.path))
        let line = output.stdout.trimmed
        let expected = probe.expected(for: caller)
        if expected.hasPrefix("errno:EAGAIN") {
            // The fork bomb also reports how far it got: fewer forks than the limit.
            #expect(line.hasPrefix(expected), "\(output)")
            let forked = Int(line.split(separator: ":").last ?? "") ?? Int.max
            #expect(forked < 32, "\(output)")
        } else {
            #expect(line == expected, "\(output)")
        }
        #expect(output.status == 0, "\(output)")
    }

    @Test(arguments: Caller.available)
    func environmentIsClearedAndDocumented(caller: Caller) {
        var environment = ProcessInfo.processInfo.environment
        environment["KILN_TEST_SECRET"] = "hunter2"
        let output = SandboxFixture.probe(caller, options: ["--env", "SEED=7", "--cpus", "1"], ["env"], environment: environment)
        let names = Set(output.stdout.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        #expect(!output.stdout.contains("hunter2"), "\(output)")
        #expect(names == ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "SOURCE_DATE_EPOCH", "PYTHONHASHSEED", "USER", "LOGNAME",
                          "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SEED"], "\(output)")
        #expect(output.stdout.contains("OMP_NUM_THREADS=1\n"))
        #expect(output.stdout.contains("SEED=7\n"))
    }
}

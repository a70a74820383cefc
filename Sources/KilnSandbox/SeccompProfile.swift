#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import CSeccomp

/// The default seccomp profile: everything is allowed except what lets a process escape or
/// reconfigure its sandbox, reach the kernel's rarely needed attack surface, or touch the host's
/// terminal or clock. Blocked calls fail with EPERM (clone3 with ENOSYS, so libc falls back to
/// clone, whose flags the filter can see). Built with libseccomp in the parent and exported as
/// BPF, which the child loads with a single system call after everything else.
public enum SeccompProfile {
    /// Part of every action key: bump it whenever the rules below change.
    public static let version = "kiln-seccomp-1"

    /// One rule: a syscall, and optionally a condition on one argument.
    struct Rule {
        enum Condition {
            /// Blocked when `argument & mask == value`.
            case masked(argument: UInt32, mask: UInt64, value: UInt64)
        }
        var name: String
        var errno: Int32 = EPERM
        var condition: Condition?
    }

    /// Syscalls newer than some libseccomp releases know, by number. From Linux 5.1 on, new
    /// syscalls have the same number on every architecture.
    static let numbersForNewSyscalls: [String: Int32] = [
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "mount_setattr": 442,
        "quotactl_fd": 443, "fchmodat2": 452, "open_tree_attr": 467,
    ]

    static let namespaceFlags: [Int32] = [
        KILN_CLONE_NEWNS, KILN_CLONE_NEWCGROUP, KILN_CLONE_NEWUTS, KILN_CLONE_NEWIPC, KILN_CLONE_NEWUSER,
        KILN_CLONE_NEWPID, KILN_CLONE_NEWNET,
    ].map { Int32($0) }

    static var rules: [Rule] {
        var rules: [Rule] = []
        let blocked = [
            // Mounts, old and new API, and leaving the root.
            "mount", "umount2", "pivot_root", "chroot", "open_tree", "open_tree_attr", "move_mount", "fsopen",
            "fsconfig", "fsmount", "fspick", "mount_setattr",
            // Namespaces: entering or creating (clone is checked by flag below).
            "unshare", "setns",
            // Kernel keyrings, eBPF, perf, other processes' memory, io_uring, userfaultfd.
            "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "ptrace",
            "process_vm_readv", "process_vm_writev", "pidfd_getfd",
            "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
            // The machine itself: kernels, modules, handles, accounting, swap, reboot, clocks, log.
            "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
            "open_by_handle_at", "acct", "swapon", "swapoff", "reboot",
            "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog",
            "iopl", "ioperm", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup", "uselib",
        ]
        rules += blocked.map { Rule(name: $0) }
        rules.append(Rule(name: "clone3", errno: ENOSYS))
        for flag in namespaceFlags {
            rules.append(Rule(name: "clone", condition: .masked(argument: 0, mask: UInt64(flag), value: UInt64(flag))))
        }
        // Faking terminal input or poking the console, whatever the upper 32 bits say.
        for request in [UInt64(TIOCSTI), UInt64(TIOCLINUX)] {
            rules.append(Rule(name: "ioctl", condition: .masked(argument: 1, mask: 0xFFFF_FFFF, value: request)))
        }
        // chmod-family calls that would set setuid or setgid bits.
        for (name, argument) in [("chmod", UInt32(1)), ("fchmod", 1), ("fchmodat", 2), ("fchmodat2", 2)] {
            for bit in [UInt64(S_ISUID), UInt64(S_ISGID)] {
                rules.append(Rule(name: name, condition: .masked(argument: argument, mask: bit, value: bit)))
            }
        }
        return rules
    }

    /// The compiled filter (struct sock_filter[]), built once per process.
    public static let bpf: Result<[UInt8], SandboxError> = {
        do throws(SandboxError) { return .success(try build()) } catch { return .failure(error) }
    }()

    static func build() throws(SandboxError) -> [UInt8] {
        func failure(_ what: String, _ rc: Int32) -> SandboxError {
            SandboxError(.setupFailed, "building the seccomp filter: \(what) failed (\(rc))")
        }
        guard let ctx = seccomp_init(kiln_scmp_act_allow()) else {
            throw SandboxError(.setupFailed, "building the seccomp filter: seccomp_init failed")
        }
        defer { seccomp_release(ctx) }
        // Other syscall tables (32-bit x86, x32) fail as a whole: no one can use them to slip
        // past rules written for the native numbers.
        var rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, kiln_scmp_act_errno(UInt16(EPERM)))
        if rc != 0 { throw failure("setting the action for other architectures", rc) }
        // kiln sets no_new_privs itself, in the child, before loading.
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        if rc != 0 { throw failure("clearing the no_new_privs attribute", rc) }

        for rule in rules {
            var number = seccomp_syscall_resolve_name(rule.name)
            if number == __NR_SCMP_ERROR {
                guard let known = numbersForNewSyscalls[rule.name] else { continue }  // Not on this architecture.
                number = known
            }
            var args: [scmp_arg_cmp] = []
            if case .masked(let argument, let mask, let value) = rule.condition {
                args.append(scmp_arg_cmp(arg: argument, op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: value))
            }
            rc = args.withUnsafeBufferPointer {
                kiln_scmp_rule_add(ctx, kiln_scmp_act_errno(UInt16(rule.errno)), number, UInt32($0.count), $0.baseAddress)
            }
            if rc != 0 { throw failure("adding the rule for \(rule.name)", rc) }
        }

        // libseccomp 2.5 exports to a descriptor only: use an anonymous memory file.
        let fd = kiln_memfd("kiln-seccomp")
        if fd < 0 { throw SandboxError(.setupFailed, "building the seccomp filter: memfd_create failed (errno \(-fd))") }
        defer { close(fd) }
        rc = seccomp_export_bpf(ctx, fd)
        if rc != 0 { throw failure("seccomp_export_bpf", rc) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, lseek(fd, 0, SEEK_SET) == 0 else { throw failure("reading the exported filter", -1) }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard got == size else { throw failure("reading the exported filter", -1) }
        return bytes
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import SystemPackage

/// Owns C strings for the child; freed when the launch is done with them.
final class CStringArena {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func copy(_ string: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(string)!
        pointers.append(pointer)
        return pointer
    }

    /// A NULL-terminated array of copies, itself freed with the arena.
    func copyArray(_ strings: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: strings.count + 1)
        for (i, string) in strings.enumerated() { array[i] = UnsafePointer(copy(string)) }
        array[strings.count] = nil
        pointers.append(UnsafeMutableRawPointer(array).assumingMemoryBound(to: CChar.self))
        return array
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }
}

/// Everything about one launch that can be computed and checked before clone(): the mount plan,
/// argv and environment as C strings, limits, affinity and the cgroups. (The seccomp filter is
/// compiled after clone(), while the child builds its root, and sent down the sync pipe.)
final class PreparedLaunch {
    let spec: SandboxSpec
    let steps: [MountStep]
    /// An image tree bound read-only as the root instead of a tmpfs (`MountPlan.plan`).
    let rootBind: String?
    let environment: [String]
    /// The PATH the command is looked up in (the environment's, or kiln's default).
    let searchPath: String
    let cpuMask: [UInt8]
    var rlimits: [kiln_rlimit] = []
    let cgroups: SandboxCgroups
    let memoryEnforcement: LimitEnforcement
    let pidsEnforcement: LimitEnforcement

    init(_ spec: SandboxSpec) throws(SandboxError) {
        self.spec = spec
        guard spec.workingDirectory.hasPrefix("/") else {
            throw SandboxError(.invalidSpec, "the working directory \"\(spec.workingDirectory)\" must be an absolute path inside the sandbox, like /work")
        }
        guard !spec.hostname.isEmpty, spec.hostname.utf8.count <= 64, !spec.hostname.contains("/") else {
            throw SandboxError(.invalidSpec, "the hostname \"\(spec.hostname)\" must be 1 to 64 characters")
        }
        (steps, rootBind) = try MountPlan.plan(spec)
        let effective = spec.effectiveEnvironment
        environment = effective.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        searchPath = effective["PATH"] ?? SandboxSpec.defaultPath
        cpuMask = try PreparedLaunch.affinity(cpus: spec.limits.cpus, set: spec.limits.cpuSet)

        let limits = spec.limits
        if let memory = limits.memory, memory < 1 << 20 {
            throw SandboxError(.invalidSpec, "a memory limit of \(memory) bytes is too small to start a process: give at least 1M")
        }
        if let pids = limits.pids, pids < 1 {
            throw SandboxError(.invalidSpec, "the pids limit must be at least 1 (it was \(pids))")
        }
        // Without an exact pids limit, the ceiling is the pid namespace's pid_max where the
        // kernel has one (free), else the same number through the pids cgroup: moving a
        // process into a v1 cgroup waits for an RCU grace period, often longer than the run.
        let ceilingInNamespace = steps.contains { $0.kind == KILN_MOUNT_WRITE && $0.target.hasSuffix("/pid_max") }
        let pidsLimit = limits.pids ?? (ceilingInNamespace ? nil : limits.pidCeiling)
        cgroups = SandboxCgroups.create(memory: limits.memory, pids: pidsLimit)
        // Where a cgroup is not available, an rlimit is the fallback. RLIMIT_NPROC does not bind
        // a caller whose uid is the host's root, so then the pids limit is reported as absent.
        var memoryEnforcement = LimitEnforcement.none
        if let memory = limits.memory {
            if let version = cgroups.enforcement(of: "memory") {
                memoryEnforcement = version
            } else {
                rlimits.append(kiln_rlimit(resource: Int32(KILN_RLIMIT_DATA), limit: memory))
                memoryEnforcement = .rlimit
            }
        }
        var pidsEnforcement = LimitEnforcement.none
        if ceilingInNamespace {
            pidsEnforcement = .pidNamespace
        } else if let pids = pidsLimit {
            if let version = cgroups.enforcement(of: "pids") {
                pidsEnforcement = version
            } else {
                rlimits.append(kiln_rlimit(resource: Int32(KILN_RLIMIT_NPROC), limit: UInt64(pids)))
                pidsEnforcement = geteuid() == 0 ? .none : .rlimit
            }
        }
        // No core files: they would land in the work tree, or go to the host's core handler.
        rlimits.append(kiln_rlimit(resource: Int32(KILN_RLIMIT_CORE), limit: 0))
        self.memoryEnforcement = memoryEnforcement
        self.pidsEnforcement = pidsEnforcement
    }

    deinit { cgroups.destroy() }

    /// The CPUs to pin to, as a cpu_set_t: the first `cpus` of those this process may run on, or
    /// the ones `set` names (indices into them, modulo their count). Empty: no pinning.
    static func affinity(cpus: Int?, set: [Int]? = nil) throws(SandboxError) -> [UInt8] {
        guard cpus != nil || set != nil else { return [] }
        var current = cpu_set_t()
        guard kiln_get_affinity(&current, MemoryLayout<cpu_set_t>.size) == 0 else { return [] }
        var allowed: [Int] = []
        withUnsafeBytes(of: &current) { bytes in
            for bit in 0..<(bytes.count * 8) where bytes[bit / 8] & (1 << (bit % 8)) != 0 { allowed.append(bit) }
        }
        guard !allowed.isEmpty else { return [] }
        var mask = [UInt8](repeating: 0, count: MemoryLayout<cpu_set_t>.size)
        func pin(_ cpu: Int) { mask[cpu / 8] |= 1 << (cpu % 8) }
        if let set {
            guard !set.isEmpty, set.allSatisfy({ $0 >= 0 }) else {
                throw SandboxError(.invalidSpec, "cpuSet must name at least one CPU, by index from 0 (it was \(set))")
            }
            for i in set { pin(allowed[i % allowed.count]) }
            return mask
        }
        let cpus = cpus!
        guard cpus >= 1 else { throw SandboxError(.invalidSpec, "cpus must be at least 1 (it was \(cpus))") }
        guard cpus <= allowed.count else {
            throw SandboxError(.invalidSpec, "cpus is \(cpus), but kiln may only use \(allowed.count) CPU\(allowed.count == 1 ? "" : "s") here: ask for \(allowed.count) or fewer")
        }
        for cpu in allowed.prefix(cpus) { pin(cpu) }
        return mask
    }

    private static func pipe() throws(SandboxError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = kiln_pipe_cloexec(&fds)
        guard rc == 0 else {
            throw SandboxError(.setupFailed, "creating a pipe: \(Errno(rawValue: -rc).sentenceWithName)", step: "pipe", errno: Errno(rawValue: -rc))
        }
        return (fds[0], fds[1])
    }

    /// Clones the sandbox, lets it go, waits for it and collects the result. Runs on the
    /// supervisor thread, which stays alive until the sandbox is gone.
    func runToCompletion(
        onLaunch: (pid_t, Int32) -> Void,
        onLaunchFailure: (SandboxError) -> Void
    ) throws(SandboxError) -> SandboxResult {
        let arena = CStringArena()
        let sync: (read: Int32, write: Int32)
        let report: (read: Int32, write: Int32)
        let status: (read: Int32, write: Int32)
        do throws(SandboxError) {
            sync = try Self.pipe()
            report = try Self.pipe()
            status = try Self.pipe()
        } catch {
            onLaunchFailure(error)
            throw error
        }
        var parentOpen: Set<Int32> = [sync.write, report.read, status.read]
        defer { for fd in parentOpen { close(fd) } }

        let mounts = UnsafeMutablePointer<kiln_mount>.allocate(capacity: steps.count)
        defer { mounts.deallocate() }
        for (i, step) in steps.enumerated() {
            mounts[i] = kiln_mount(
                kind: step.kind.rawValue, flags: step.flags, mode: step.mode, size: step.size,
                source: step.source.map { UnsafePointer(arena.copy($0)) }, target: UnsafePointer(arena.copy(step.target)))
        }
        var config = kiln_spawn_config()
        config.clone_flags = Int32(KILN_CLONE_NEWUSER | KILN_CLONE_NEWNS | KILN_CLONE_NEWPID | KILN_CLONE_NEWUTS | KILN_CLONE_NEWIPC)
        if spec.network == .none {
            config.clone_flags |= Int32(KILN_CLONE_NEWNET)
            config.bring_up_loopback = 1
        }
        config.unshare_cgroup = 1
        config.uid_map = UnsafePointer(arena.copy("\(SandboxSpec.sandboxUID) \(geteuid()) 1\n"))
        config.gid_map = UnsafePointer(arena.copy("\(SandboxSpec.sandboxUID) \(getegid()) 1\n"))
        config.hostname = UnsafePointer(arena.copy(spec.hostname))
        config.base_dir = UnsafePointer(arena.copy("/tmp"))
        config.mounts = UnsafePointer(mounts)
        config.mount_count = steps.count
        config.argv = UnsafePointer(arena.copyArray(spec.command))
        config.envp = UnsafePointer(arena.copyArray(environment))
        config.search_path = UnsafePointer(arena.copy(searchPath))
        config.cwd = UnsafePointer(arena.copy(spec.workingDirectory))
        config.stdin_fd = Self.descriptor(spec.stdin)
        config.stdout_fd = Self.descriptor(spec.stdout)
        config.stderr_fd = Self.descriptor(spec.stderr)
        config.sync_fd = sync.read
        config.report_fd = report.write
        config.status_fd = status.write
        config.parent_fds = (sync.write, report.read, status.read)
        config.root_bind = rootBind.map { UnsafePointer(arena.copy($0)) }

        var pidfd: Int32 = -1
        let start = monotonicSeconds()
        let pid: pid_t = rlimits.withUnsafeBufferPointer { rlimitBuffer in
            cpuMask.withUnsafeBytes { maskBytes in
                config.rlimits = rlimitBuffer.baseAddress
                config.rlimit_count = rlimitBuffer.count
                config.cpu_mask = maskBytes.count > 0 ? maskBytes.baseAddress : nil
                config.cpu_mask_size = maskBytes.count
                return kiln_sandbox_clone(&config, &pidfd)
            }
        }
        close(sync.read)
        close(report.write)
        close(status.write)
        if pid < 0 {
            let error = UserNamespaces.diagnoseCloneFailure(Errno(rawValue: -pid))
            onLaunchFailure(error)
            throw error
        }
        onLaunch(pid, pidfd)

        // While the child builds its root: join the cgroups and compile the seccomp filter, then
        // send the filter and let the child go on. A failure closes the sync pipe instead, and
        // the child exits before running anything.
        var joinError: SandboxError?
        do {
            try cgroups.join(pid)
            let filter = try SeccompProfile.bpf.get()
            let instructions = filter.count / 8  // sizeof(struct sock_filter)
            var message: [UInt8] = [1, 0, UInt8(instructions & 0xff), UInt8(instructions >> 8)] + filter
            let count = message.count
            // Far below the pipe's capacity (a filter is a few kilobytes): one write, no blocking.
            // EPIPE means pid 1 already failed a setup step and exited: its report says why.
            let written = message.withUnsafeMutableBytes { kiln_write_without_sigpipe(sync.write, $0.baseAddress!, count) }
            if written != count && written != -Int(EPIPE) {
                let error = Errno(rawValue: Int32(written < 0 ? -written : Int(EIO)))
                joinError = SandboxError(.setupFailed, "sending the seccomp filter to the sandbox: \(error.sentenceWithName)", step: "send seccomp filter", errno: error)
            }
        } catch {
            joinError = error
        }
        close(sync.write)
        parentOpen.remove(sync.write)

        var childReport: kiln_report?
        var reportOpen = true
        var timedOut = false
        var deadline = spec.limits.timeout.map { start + $0 }
        var terminated = false
        while true {
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            if reportOpen { fds.append(pollfd(fd: report.read, events: Int16(POLLIN), revents: 0)) }
            var waitMilliseconds: Int32 = -1
            if let deadline {
                waitMilliseconds = Int32(clamping: Int(max(0, (deadline - monotonicSeconds()) * 1000).rounded(.up)))
            }
            let ready = poll(&fds, nfds_t(fds.count), waitMilliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if reportOpen && fds.count > 1 && fds[1].revents != 0 {
                if let received = readReport(report.read) { childReport = received } else { reportOpen = false }
            }
            if fds[0].revents != 0 { break }
            if ready == 0, let current = deadline, monotonicSeconds() >= current {
                timedOut = true
                if !terminated && spec.killGracePeriod > 0 {
                    // pid 1 forwards SIGTERM to the command's group; SIGKILL follows after the grace period.
                    _ = kiln_pidfd_send_signal(pidfd, SIGTERM)
                    terminated = true
                    deadline = monotonicSeconds() + spec.killGracePeriod
                } else {
                    _ = kiln_pidfd_send_signal(pidfd, SIGKILL)
                    deadline = nil
                }
            }
        }
        if reportOpen, childReport == nil { childReport = readReport(report.read, blocking: false) }

        var waitStatus: Int32 = 0
        var usage = rusage()
        _ = kiln_wait4(pid, &waitStatus, &usage)
        let wall = monotonicSeconds() - start
        var commandStatus: Int32 = 0
        let statusBytes = read(status.read, &commandStatus, 4)

        if let joinError { throw joinError }
        if let childReport { throw Self.error(for: childReport, spec: spec, searchPath: searchPath) }

        var result = SandboxResult(
            exitStatus: nil, signal: nil, timedOut: timedOut,
            memoryLimitExceeded: cgroups.memoryLimitKilled(), pidsLimitReached: cgroups.pidsLimitHit(),
            wallSeconds: wall,
            userCPUSeconds: Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
            systemCPUSeconds: Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6,
            peakMemoryBytes: cgroups.peakMemory() ?? UInt64(max(0, usage.ru_maxrss)) * 1024,
            memoryEnforcement: memoryEnforcement, pidsEnforcement: pidsEnforcement)
        // pid 1 reports the command's own status; without it, pid 1 itself was killed.
        let reported = statusBytes == 4 ? commandStatus : waitStatus
        if reported & 0x7f == 0 {
            result.exitStatus = statusBytes == 4 ? (reported >> 8) & 0xff : nil
            if statusBytes != 4 { result.signal = SIGKILL }
        } else {
            result.signal = reported & 0x7f
        }
        cgroups.destroy()
        return result
    }

    private static func descriptor(_ io: SandboxSpec.IO) -> Int32 {
        switch io {
        case .inherit: return -1
        case .fileDescriptor(let fd): return fd.rawValue
        }
    }

    /// Reads one report; nil at end of file.
    private func readReport(_ fd: Int32, blocking: Bool = true) -> kiln_report? {
        if !blocking {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) <= 0 { return nil }
        }
        var report = kiln_report()
        let size = MemoryLayout<kiln_report>.size
        var n: Int
        repeat { n = read(fd, &report, size) } while n < 0 && errno == EINTR
        return n == size ? report : nil
    }

    private static func error(for report: kiln_report, spec: SandboxSpec, searchPath path: String) -> SandboxError {
        let errno = Errno(rawValue: report.error)
        let detail = withUnsafeBytes(of: report.detail) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let shown = detail.hasPrefix(MountPlan.newRoot) ? String(detail.dropFirst(MountPlan.newRoot.count))
            : detail.hasPrefix(MountPlan.oldRoot) ? String(detail.dropFirst(MountPlan.oldRoot.count)) : detail
        let step = String(cString: kiln_step_name(report.step))
        if report.step == Int32(KILN_STEP_EXEC.rawValue) {
            let code: SandboxError.Code = errno == .noSuchFileOrDirectory ? .commandNotFound : .commandNotExecutable
            let hint = errno == .noSuchFileOrDirectory
                ? (spec.command[0].contains("/") ? ": mount it into the sandbox with --ro-bind" : " in the sandbox's PATH (\(path)): give its full path, or mount it with --ro-bind")
                : ""
            return SandboxError(code, "cannot run \"\(shown)\": \(errno.sentenceWithName)\(hint)", step: step, errno: errno)
        }
        if let unavailable = UserNamespaces.diagnoseSetupFailure(step: report.step, errno: errno) { return unavailable }
        let what = shown.isEmpty ? step : "\(step) \(shown)"
        return SandboxError(.setupFailed, "sandbox setup failed: \(what): \(errno.sentenceWithName)", step: step, errno: errno)
    }
}

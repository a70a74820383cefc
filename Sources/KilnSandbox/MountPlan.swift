#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import SystemPackage

/// One step of the child's mount plan, with paths already in the setup view (host paths under
/// `/oldroot`, sandbox paths under `/newroot`) so the child does no string work.
struct MountStep: Equatable {
    var kind: kiln_mount_kind
    var flags: UInt32 = 0
    var mode: UInt32 = 0
    var size: UInt64 = 0
    var source: String?
    var target: String
}

/// Turns a spec into the ordered list of mount steps: the host toolchain, /etc, /proc, /dev,
/// /tmp, then the caller's mounts, shallowest target first so nesting works whatever the order
/// on the command line.
enum MountPlan {
    static let oldRoot = "/oldroot"
    static let newRoot = "/newroot"

    /// /proc entries that would let a process holding the host's uid (a root caller's sandbox
    /// runs as the host's root uid, without capabilities) reconfigure the machine.
    static let readOnlyProcPaths = ["sys", "sysrq-trigger", "irq", "bus", "fs"]
    static let maskedProcPaths = ["kcore", "keys", "timer_list", "sched_debug", "latency_stats", "acpi", "scsi", "kmsg", "kallsyms"]
    static let deviceNames = ["null", "zero", "full", "random", "urandom", "tty"]

    static func build(_ spec: SandboxSpec) throws(SandboxError) -> [MountStep] {
        try plan(spec).steps
    }

    /// The steps, and the host directory to bind as the root instead of a tmpfs (an image's tree).
    static func plan(_ spec: SandboxSpec) throws(SandboxError) -> (steps: [MountStep], rootBind: String?) {
        var steps: [MountStep] = []
        var imageHasEtc = false
        var rootBind: String?
        switch spec.root {
        case .hostToolchain: steps += hostToolchain()
        case .image(let path):
            let image = try ImageRoot.scan(path, mounts: spec.mounts)
            steps += image.steps
            imageHasEtc = image.hasEtc
            rootBind = image.rootBind
        case .empty: break
        }
        steps += imageHasEtc ? ImageRoot.generatedEtcOverImage(hostname: spec.hostname) : generatedEtc(hostname: spec.hostname)
        steps += procfs(pidMax: try pidNamespaceCeiling(spec.limits))
        steps += devices()

        let userMounts = try validated(spec.mounts)
        if !userMounts.contains(where: { $0.target == "/tmp" }) {
            steps.append(tmpfs(at: "/tmp", size: spec.tmpSize))
        }
        var homeCreated = false
        for mount in userMounts {
            switch mount {
            case .bind(let source, let target, let readOnly):
                let resolved = try resolve(source: source, for: target)
                var flags = UInt32(readOnly ? KILN_MOUNT_READONLY : 0)
                if resolved.isDirectory { flags |= UInt32(KILN_MOUNT_SOURCE_IS_DIR) }
                steps.append(MountStep(kind: KILN_MOUNT_BIND, flags: flags, source: oldRoot + resolved.path, target: newRoot + target))
            case .tmpfs(let target, let size):
                steps.append(tmpfs(at: target, size: size ?? (target == "/tmp" ? spec.tmpSize : nil)))
            }
            if mount.target == "/tmp" {
                steps.append(MountStep(kind: KILN_MOUNT_DIR, mode: 0o755, target: newRoot + SandboxSpec.home))
                homeCreated = true
            }
        }
        if !homeCreated && !userMounts.contains(where: { $0.target == "/tmp" }) {
            // HOME lives in /tmp: insert it right after the default /tmp.
            let index = steps.firstIndex { $0.target == newRoot + "/tmp" }.map { $0 + 1 } ?? steps.endIndex
            steps.insert(MountStep(kind: KILN_MOUNT_DIR, mode: 0o755, target: newRoot + SandboxSpec.home), at: index)
        }
        return (steps, rootBind)
    }

    static func tmpfs(at target: String, size: UInt64?) -> MountStep {
        var options = "mode=1777"
        if let size { options += ",size=\(size)" }
        return MountStep(kind: KILN_MOUNT_TMPFS, source: options, target: newRoot + target)
    }

    /// The host's /usr and the top-level links or directories into it, and the few /etc entries
    /// the dynamic loader and Debian's alternatives need: read-only.
    static func hostToolchain() -> [MountStep] {
        var steps: [MountStep] = []
        steps.append(MountStep(kind: KILN_MOUNT_BIND, flags: UInt32(KILN_MOUNT_READONLY | KILN_MOUNT_SOURCE_IS_DIR), source: oldRoot + "/usr", target: newRoot + "/usr"))
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            steps += mirror("/" + name)
        }
        for path in ["/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"] {
            steps += mirror(path)
        }
        return steps
    }

    /// A host path as it is: a symlink stays a symlink, anything else is bound read-only.
    static func mirror(_ path: String) -> [MountStep] {
        var st = stat()
        guard lstat(path, &st) == 0 else { return [] }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buffer, buffer.count - 1)
            guard n > 0 else { return [] }
            let destination = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return [MountStep(kind: KILN_MOUNT_SYMLINK, source: destination, target: newRoot + path)]
        }
        var flags = UInt32(KILN_MOUNT_READONLY)
        if (st.st_mode & S_IFMT) == S_IFDIR { flags |= UInt32(KILN_MOUNT_SOURCE_IS_DIR) }
        return [MountStep(kind: KILN_MOUNT_BIND, flags: flags, source: oldRoot + path, target: newRoot + path)]
    }

    static func generatedEtc(hostname: String) -> [MountStep] {
        generatedEtcFiles(hostname: hostname).map { name, content in
            MountStep(kind: KILN_MOUNT_FILE, mode: 0o644, size: UInt64(content.utf8.count), source: content, target: newRoot + "/etc/" + name)
        }
    }

    /// The /etc files kiln writes for every sandbox: name and content.
    static func generatedEtcFiles(hostname: String) -> [(String, String)] {
        let uid = SandboxSpec.sandboxUID
        let user = SandboxSpec.sandboxUser
        let files = [
            ("passwd", "root:x:0:0:root:/root:/bin/sh\n\(user):x:\(uid):\(uid):\(user):\(SandboxSpec.home):/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            ("group", "root:x:0:\n\(user):x:\(uid):\nnogroup:x:65534:\n"),
            ("hosts", "127.0.0.1\tlocalhost \(hostname)\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
            ("hostname", "\(hostname)\n"),
            ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"),
        ]
        return files
    }

    /// The pid namespace's pid_max, when the ceiling applies and the kernel has per-namespace
    /// pid_max (6.14). Pids allocate from 1 and, after wrapping, from 300: so at least
    /// ceiling − 300 and at most ceiling processes can exist at once.
    static func pidNamespaceCeiling(_ limits: SandboxSpec.Limits) throws(SandboxError) -> Int? {
        guard limits.pids == nil, let ceiling = limits.pidCeiling, PidNamespace.hasOwnPidMax else { return nil }
        guard ceiling >= PidNamespace.minimumPidMax else {
            throw SandboxError(.invalidSpec, "a pid ceiling of \(ceiling) is below the kernel's minimum pid_max (\(PidNamespace.minimumPidMax)): set an exact pids limit instead")
        }
        return ceiling + 1  // pid_max is exclusive.
    }

    static func procfs(pidMax: Int?) -> [MountStep] {
        var steps = [MountStep(kind: KILN_MOUNT_PROC, target: newRoot + "/proc")]
        if let pidMax {
            let value = "\(pidMax)\n"
            steps.append(MountStep(kind: KILN_MOUNT_WRITE, size: UInt64(value.utf8.count), source: value, target: newRoot + "/proc/sys/kernel/pid_max"))
        }
        for name in readOnlyProcPaths {
            steps.append(MountStep(kind: KILN_MOUNT_REMOUNT_READONLY, flags: UInt32(KILN_MOUNT_OPTIONAL), target: newRoot + "/proc/" + name))
        }
        for name in maskedProcPaths {
            steps.append(MountStep(kind: KILN_MOUNT_MASK, flags: UInt32(KILN_MOUNT_OPTIONAL), source: oldRoot + "/dev/null", target: newRoot + "/proc/" + name))
        }
        return steps
    }

    static func devices() -> [MountStep] {
        var steps = [MountStep(kind: KILN_MOUNT_TMPFS, source: "mode=0755,size=64k", target: newRoot + "/dev")]
        for name in deviceNames {
            steps.append(MountStep(kind: KILN_MOUNT_BIND, flags: UInt32(KILN_MOUNT_ALLOW_DEVICES | KILN_MOUNT_OPTIONAL), source: oldRoot + "/dev/" + name, target: newRoot + "/dev/" + name))
        }
        for (name, destination) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            steps.append(MountStep(kind: KILN_MOUNT_SYMLINK, source: destination, target: newRoot + "/dev/" + name))
        }
        steps.append(MountStep(kind: KILN_MOUNT_TMPFS, source: "mode=1777,size=64m", target: newRoot + "/dev/shm"))
        return steps
    }

    /// Checks targets and orders the caller's mounts parents-first.
    static func validated(_ mounts: [SandboxSpec.Mount]) throws(SandboxError) -> [SandboxSpec.Mount] {
        var seen: Set<String> = []
        for mount in mounts {
            let target = mount.target
            guard target.hasPrefix("/") else {
                throw SandboxError(.invalidSpec, "mount target \"\(target)\" is not an absolute path: targets are paths inside the sandbox, like /work/data")
            }
            let components = target.split(separator: "/")
            guard !components.isEmpty else {
                throw SandboxError(.invalidSpec, "a mount cannot replace the sandbox's root \"/\": mount at a directory below it, like /work")
            }
            if components.contains(where: { $0 == ".." || $0 == "." }) {
                throw SandboxError(.invalidSpec, "mount target \"\(target)\" contains \".\" or \"..\": write it without them")
            }
            if ["proc", "dev"].contains(components[0]) {
                throw SandboxError(.invalidSpec, "mount target \"\(target)\" is inside /\(components[0]), which kiln builds itself")
            }
            if case .tmpfs(_, let size?) = mount, size < 4096 {
                // tmpfs reads size=0 as "no limit": never what a caller asking for a size meant.
                throw SandboxError(.invalidSpec, "the tmpfs at \"\(target)\" is \(size) bytes: give at least 4K, like \(target):64M")
            }
            let normalized = "/" + components.joined(separator: "/")
            if !seen.insert(normalized).inserted {
                throw SandboxError(.invalidSpec, "two mounts target \"\(normalized)\": keep one")
            }
            if normalized.utf8.count > 3000 {
                throw SandboxError(.invalidSpec, "mount target \"\(normalized.prefix(60))…\" is too long")
            }
        }
        let normalizedMounts = mounts.map { mount -> SandboxSpec.Mount in
            let target = "/" + mount.target.split(separator: "/").joined(separator: "/")
            switch mount {
            case .bind(let source, _, let readOnly): return .bind(source: source, target: target, readOnly: readOnly)
            case .tmpfs(_, let size): return .tmpfs(target: target, size: size)
            }
        }
        // A stable sort by depth: /work before /work/data, the caller's order among equals.
        return normalizedMounts.enumerated().sorted { a, b in
            let da = a.element.target.split(separator: "/").count
            let db = b.element.target.split(separator: "/").count
            return da != db ? da < db : a.offset < b.offset
        }.map(\.element)
    }

    static func resolve(source: String, for target: String) throws(SandboxError) -> (path: String, isDirectory: Bool) {
        guard let resolved = realpath(source, nil) else {
            let error = Errno(rawValue: errno)
            throw SandboxError(.invalidSpec, "bind source \"\(source)\" (for \(target)): \(error.sentenceWithName)", errno: error)
        }
        defer { free(resolved) }
        let path = String(cString: resolved)
        var st = stat()
        guard stat(path, &st) == 0 else {
            let error = Errno(rawValue: errno)
            throw SandboxError(.invalidSpec, "bind source \"\(source)\" (for \(target)): \(error.sentenceWithName)", errno: error)
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFDIR || type == S_IFREG else {
            throw SandboxError(.invalidSpec, "bind source \"\(source)\" (for \(target)) is not a regular file or directory: only those can be bound")
        }
        return (path, type == S_IFDIR)
    }
}

/// Facts about this kernel's pid namespaces.
enum PidNamespace {
    /// Linux 6.14 made pid_max a property of each pid namespace, writable from inside it.
    static let hasOwnPidMax: Bool = {
        var name = utsname()
        guard uname(&name) == 0 else { return false }
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return (numbers[0], numbers[1]) >= (6, 14)
    }()

    /// The kernel refuses a pid_max below RESERVED_PIDS + 1.
    static let minimumPidMax = 301
}

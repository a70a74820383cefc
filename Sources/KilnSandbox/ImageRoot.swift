#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import SystemPackage

/// The mount steps that make an extracted image tree the sandbox's root (`SandboxSpec.Root.image`).
///
/// Two ways, the same view:
/// - **Whole tree** (the usual one, and the fastest: one mount): the tree itself is bound
///   read-only as `/` before any step runs. Every mount point must then exist in it: the image
///   store adds empty `proc`, `dev`, `tmp`, `work` and `etc/{passwd,group,hosts,hostname,nsswitch.conf}`
///   when it extracts an image, and each of the caller's targets must exist in the tree or lie
///   inside another of the mounts (as `/work/data` lies inside `/work`).
/// - **Entry by entry**, when that does not hold (a `--bind x /data` the image has no `/data`
///   for): `/` is kiln's tmpfs, each top-level entry of the image is put on it as it is (a
///   directory or file bound read-only, a symlink like `bin -> usr/bin` recreated), leaving out
///   `proc`, `dev`, `sys`, `tmp` and `work`.
///
/// Either way kiln's generated /etc files are written in the setup root (which the host never
/// sees) and bound read-only over the image's, when the image has an `etc` directory.
enum ImageRoot {
    /// Top-level names of an image that kiln never mounts.
    static let skipped: Set<String> = ["proc", "dev", "sys", "tmp", "work"]
    /// Where the generated /etc files are written in the setup root before being bound.
    static let scratch = "/kiln-etc"

    struct Plan {
        var steps: [MountStep]
        var hasEtc: Bool
        /// The tree to bind as `/` (whole-tree mode), as a host path under `/oldroot`.
        var rootBind: String?
    }

    /// Directories the whole-tree mode mounts on (besides the caller's targets).
    static let mountPointDirectories = ["proc", "dev", "tmp"]

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    /// Whether every mount point exists in the tree (see the type's comment).
    static func wholeTreeWorks(_ root: String, mounts: [SandboxSpec.Mount]) -> Bool {
        guard mountPointDirectories.allSatisfy({ isDirectory(root + "/" + $0) }), isDirectory(root + "/etc") else { return false }
        for (name, _) in MountPlan.generatedEtcFiles(hostname: SandboxSpec.defaultHostname) {
            var st = stat()
            guard lstat(root + "/etc/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return false }
        }
        let targets = Set(mounts.map { "/" + $0.target.split(separator: "/").joined(separator: "/") } + ["/tmp", "/dev", "/proc"])
        for target in targets {
            let components = target.split(separator: "/")
            let insideAnother = (1..<max(1, components.count)).contains { n in targets.contains("/" + components.prefix(n).joined(separator: "/")) }
            if insideAnother { continue }
            var st = stat()
            // It must be there and not a symlink (a mount would follow it).
            guard lstat(root + target, &st) == 0, st.st_mode & S_IFMT != S_IFLNK else { return false }
        }
        return true
    }

    static func scan(_ path: String, mounts: [SandboxSpec.Mount]) throws(SandboxError) -> Plan {
        guard let resolved = realpath(path, nil) else {
            let error = Errno(rawValue: errno)
            throw SandboxError(.invalidSpec, "the image root \"\(path)\": \(error.sentenceWithName). Extract the image again (kiln does it on first use) or give an existing directory.", errno: error)
        }
        let root = String(cString: resolved)
        free(resolved)
        if wholeTreeWorks(root, mounts: mounts) {
            return Plan(steps: [], hasEtc: true, rootBind: MountPlan.oldRoot + root)
        }
        guard let dir = opendir(root) else {
            let error = Errno(rawValue: errno)
            throw SandboxError(.invalidSpec, "the image root \"\(root)\" cannot be listed: \(error.sentenceWithName)", errno: error)
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name == "." || name == ".." || skipped.contains(name) { continue }
            names.append(name)
        }
        closedir(dir)
        names.sort()

        var steps: [MountStep] = []
        var hasEtc = false
        for name in names {
            let host = root + "/" + name
            var st = stat()
            guard lstat(host, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(host, &buffer, buffer.count - 1)
                guard n > 0 else { continue }
                let destination = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                steps.append(MountStep(kind: KILN_MOUNT_SYMLINK, source: destination, target: MountPlan.newRoot + "/" + name))
            case S_IFDIR:
                if name == "etc" { hasEtc = true }
                steps.append(MountStep(kind: KILN_MOUNT_BIND, flags: UInt32(KILN_MOUNT_READONLY | KILN_MOUNT_SOURCE_IS_DIR), source: MountPlan.oldRoot + host, target: MountPlan.newRoot + "/" + name))
            case S_IFREG:
                steps.append(MountStep(kind: KILN_MOUNT_BIND, flags: UInt32(KILN_MOUNT_READONLY), source: MountPlan.oldRoot + host, target: MountPlan.newRoot + "/" + name))
            default:
                continue  // sockets, fifos, devices: never part of an image
            }
        }
        if hasEtc {
            for (name, _) in MountPlan.generatedEtcFiles(hostname: SandboxSpec.defaultHostname) {
                var st = stat()
                guard lstat(root + "/etc/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                    throw SandboxError(.invalidSpec, "the image root \"\(root)\" has no regular file etc/\(name) for kiln's generated one to cover. Delete that folder: kiln extracts the image again, with the file, on next use.")
                }
            }
        }
        // A mount below one of the image's own (read-only) directories needs its mount point there.
        for mount in mounts {
            let components = mount.target.split(separator: "/")
            guard components.count > 1, let top = components.first.map(String.init), names.contains(top) else { continue }
            var st = stat()
            if lstat(root + "/" + components.joined(separator: "/"), &st) != 0 {
                throw SandboxError(.invalidSpec, "mount target \"\(mount.target)\" does not exist in the image, whose /\(top) is read-only: mount under /work or /tmp, or at a path the image has.")
            }
        }
        return Plan(steps: steps, hasEtc: hasEtc, rootBind: nil)
    }

    /// kiln's /etc files, written in the setup root and bound read-only over the image's.
    static func generatedEtcOverImage(hostname: String) -> [MountStep] {
        MountPlan.generatedEtcFiles(hostname: hostname).flatMap { name, content in
            [
                MountStep(kind: KILN_MOUNT_FILE, mode: 0o644, size: UInt64(content.utf8.count), source: content, target: scratch + "/" + name),
                MountStep(kind: KILN_MOUNT_BIND, flags: UInt32(KILN_MOUNT_READONLY), source: scratch + "/" + name, target: MountPlan.newRoot + "/etc/" + name),
            ]
        }
    }
}

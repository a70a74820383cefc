#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import SystemPackage

/// The mount steps that make an extracted image tree the sandbox's root (`SandboxSpec.Root.image`).
///
/// The sandbox's `/` stays kiln's tmpfs (read-only once built); each top-level entry of the image
/// is put on it as it is: a directory or file is bound read-only, a symlink (`bin -> usr/bin`) is
/// recreated. `proc`, `dev`, `sys`, `tmp` and `work` are left out: kiln builds the first four and
/// `/work` belongs to the workspace. When the image has an `etc` directory it is bound too, and
/// kiln's generated files are written in the setup root (which the host never sees) and bound over
/// the image's `etc/passwd`, `group`, `hosts`, `hostname` and `nsswitch.conf`; those must exist as
/// regular files in the tree (the image store adds empty ones when it extracts an image).
enum ImageRoot {
    /// Top-level names of an image that kiln never mounts.
    static let skipped: Set<String> = ["proc", "dev", "sys", "tmp", "work"]
    /// Where the generated /etc files are written in the setup root before being bound.
    static let scratch = "/kiln-etc"

    struct Plan {
        var steps: [MountStep]
        var hasEtc: Bool
    }

    static func scan(_ path: String, mounts: [SandboxSpec.Mount]) throws(SandboxError) -> Plan {
        guard let resolved = realpath(path, nil) else {
            let error = Errno(rawValue: errno)
            throw SandboxError(.invalidSpec, "the image root \"\(path)\": \(error.sentenceWithName). Extract the image again (kiln does it on first use) or give an existing directory.", errno: error)
        }
        let root = String(cString: resolved)
        free(resolved)
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
        return Plan(steps: steps, hasEtc: hasEtc)
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

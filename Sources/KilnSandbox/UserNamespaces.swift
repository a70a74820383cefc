#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import SystemPackage

/// Explains, when user namespaces are unavailable, why and how to enable them.
enum UserNamespaces {
    static let knob = "/proc/sys/kernel/unprivileged_userns_clone"
    static let maxNamespaces = "/proc/sys/user/max_user_namespaces"
    static let apparmor = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"

    static func diagnoseCloneFailure(_ error: Errno) -> SandboxError {
        guard [.notPermitted, .invalidArgument, .noSpace, .tooManyUsers, .permissionDenied].contains(error) else {
            return SandboxError(.setupFailed, "creating the sandbox (clone): \(error.sentenceWithName)", step: "clone", errno: error)
        }
        return SandboxError(.userNamespacesUnavailable, "cannot create a user namespace on this machine (clone: \(error.sentenceWithName)). \(reason())", step: "clone", errno: error)
    }

    /// AppArmor's restriction lets clone() succeed and then denies what the namespace should allow.
    static func diagnoseSetupFailure(step: Int32, errno: Errno) -> SandboxError? {
        let early: [kiln_step] = [KILN_STEP_SETGROUPS, KILN_STEP_UID_MAP, KILN_STEP_GID_MAP, KILN_STEP_MOUNT_PRIVATE, KILN_STEP_MOUNT_BASE]
        guard early.contains(where: { $0.rawValue == UInt32(step) }), errno == .notPermitted || errno == .permissionDenied else { return nil }
        let name = String(cString: kiln_step_name(step))
        return SandboxError(.userNamespacesUnavailable, "the sandbox's user namespace was denied privileges (\(name): \(errno.sentenceWithName)). \(reason())", step: name, errno: errno)
    }

    static func reason() -> String {
        if readSmallFile(knob)?.trimmingWhitespace == "0" {
            return "Unprivileged user namespaces are disabled (\(knob) is 0). Enable them with `sudo sysctl -w kernel.unprivileged_userns_clone=1`."
        }
        if readSmallFile(maxNamespaces)?.trimmingWhitespace == "0" {
            return "User namespaces are disabled (\(maxNamespaces) is 0). Enable them with `sudo sysctl -w user.max_user_namespaces=15000`."
        }
        if readSmallFile(apparmor)?.trimmingWhitespace == "1" {
            return "AppArmor restricts unprivileged user namespaces (\(apparmor) is 1). Allow them with `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or give kiln an AppArmor profile with `userns,`."
        }
        return "Kiln needs user namespaces. Inside a container, run it with user namespaces allowed (e.g. `docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined`); on a host, check `sysctl user.max_user_namespaces`."
    }
}

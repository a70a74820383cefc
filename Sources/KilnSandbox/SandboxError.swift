import SystemPackage

/// Why a sandbox did not run its command to completion. Setup errors name the step and errno,
/// e.g. `bind mount /data on /work/data: No such file or directory (ENOENT)`.
public struct SandboxError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable, Codable {
        /// The spec asks for something impossible (a missing source, a relative target, …).
        case invalidSpec
        /// This machine does not let kiln create user namespaces; the message says how to enable them.
        case userNamespacesUnavailable
        /// A step between clone() and execve() failed.
        case setupFailed
        /// The command does not exist inside the sandbox.
        case commandNotFound
        /// The command exists but could not be executed.
        case commandNotExecutable
    }

    public var code: Code
    public var message: String
    /// The failing setup step, as the child reported it.
    public var step: String?
    public var errno: Errno?

    public init(_ code: Code, _ message: String, step: String? = nil, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.step = step
        self.errno = errno
    }

    public var description: String { message }
}

extension Errno {
    /// `No such file or directory (ENOENT)`: the sentence and the name people search for.
    var sentenceWithName: String {
        let names: [Errno: String] = [
            .noSuchFileOrDirectory: "ENOENT", .permissionDenied: "EACCES", .notPermitted: "EPERM",
            .invalidArgument: "EINVAL", .readOnlyFileSystem: "EROFS", .fileExists: "EEXIST",
            .notDirectory: "ENOTDIR", .isDirectory: "EISDIR", .noSpace: "ENOSPC",
            .resourceTemporarilyUnavailable: "EAGAIN", .noMemory: "ENOMEM", .resourceBusy: "EBUSY",
            .fileNameTooLong: "ENAMETOOLONG", .tooManyOpenFiles: "EMFILE", .execFormatError: "ENOEXEC",
            .tooManySymbolicLinkLevels: "ELOOP", .operationNotSupportedByDevice: "ENODEV", .noFunction: "ENOSYS",
        ]
        if let name = names[self] { return "\(description) (\(name))" }
        return "\(description) (errno \(rawValue))"
    }
}

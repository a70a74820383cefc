import CArchive
import SystemPackage

/// Every failure of the store, the archiver and the extractor: a code a caller can switch on, a
/// full-sentence message that says what, where and (when there is one) how to fix it, and the
/// underlying `Errno` when a system call failed.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A system call failed (the errno is set).
        case io
        /// The device is full (ENOSPC/EDQUOT); the store was left consistent.
        case noSpace
        /// A blob's bytes do not match its digest.
        case corrupt
        /// A blob, ref or record is not in the store.
        case notFound
        /// An archive was refused by the safe extractor (hostile or malformed).
        case refused
        /// A file kind kiln does not archive or hash (socket, device, fifo).
        case unsupportedFileType
        /// A string that should have been a digest, a size or a duration is not one.
        case invalidArgument
        /// libarchive reported an error.
        case archive
        /// A file changed while it was read.
        case changedWhileReading
    }

    public var code: Code
    public var message: String
    public var errno: Errno?

    public init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { message }

    /// Builds the error for a failed system call: `what PATH: ENOSPC (No space left on device)`.
    static func system(_ what: String, _ path: String, _ errno: Errno) -> StoreError {
        if errno == .noSpace || errno.rawValue == 122 /* EDQUOT */ {
            return StoreError(
                .noSpace,
                "\(what) \(path): no space left on device (\(errnoName(errno))). Nothing partial was left behind; free some space (`kiln cache gc --max-size SIZE` shrinks the cache) and try again.",
                errno: errno)
        }
        return StoreError(.io, "\(what) \(path): \(errnoName(errno)) (\(errno.description))", errno: errno)
    }
}

/// The symbolic name of the common errnos (`ENOENT`), so messages match what `man 2` says.
func errnoName(_ e: Errno) -> String {
    switch e.rawValue {
    case 1: return "EPERM"
    case 2: return "ENOENT"
    case 5: return "EIO"
    case 9: return "EBADF"
    case 13: return "EACCES"
    case 17: return "EEXIST"
    case 18: return "EXDEV"
    case 20: return "ENOTDIR"
    case 21: return "EISDIR"
    case 22: return "EINVAL"
    case 24: return "EMFILE"
    case 27: return "EFBIG"
    case 28: return "ENOSPC"
    case 30: return "EROFS"
    case 36: return "ENAMETOOLONG"
    case 39: return "ENOTEMPTY"
    case 40: return "ELOOP"
    case 122: return "EDQUOT"
    default: return "errno \(e.rawValue)"
    }
}

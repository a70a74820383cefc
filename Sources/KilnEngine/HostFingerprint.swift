#if canImport(Glibc)
import Glibc
#endif
import KilnStore

/// The host toolchain's identity for `image: host`: what the sandbox sees of the host is its /usr
/// and /lib, which the package manager owns, so the digest of the dpkg database and os-release
/// changes when a package is upgraded (and reruns what used it). Computed once per run.
public enum HostFingerprint {
    /// The files fingerprinted; a missing one contributes `missing`.
    public static let files = ["/etc/os-release", "/var/lib/dpkg/status"]

    /// `cache` (the run's stat cache) saves rereading the dpkg database when it did not change.
    public static func compute(files: [String] = HostFingerprint.files, cache: StatCache? = nil) -> Digest {
        // v2: links are followed (/etc/os-release is a link to /usr/lib/os-release; v1 hashed the link).
        var text = "kiln-host-v2\n"
        for file in files {
            let target = realpath(file, nil).map { p in defer { free(p) }; return String(cString: p) } ?? file
            if let d = try? TreeHasher.digest(of: target, cache: cache).digest {
                text += "\(file) \(d)\n"
            } else {
                text += "\(file) missing\n"
            }
        }
        return Digest.of(Array(text.utf8))
    }
}

import KilnStore

/// The host toolchain's identity for `image: host`: what the sandbox sees of the host is its /usr
/// and /lib, which the package manager owns, so the digest of the dpkg database and os-release
/// changes when a package is upgraded (and reruns what used it). Computed once per run.
public enum HostFingerprint {
    /// The files fingerprinted; a missing one contributes `missing`.
    public static let files = ["/etc/os-release", "/var/lib/dpkg/status"]

    /// `cache` (the run's stat cache) saves rereading the dpkg database when it did not change.
    public static func compute(files: [String] = HostFingerprint.files, cache: StatCache? = nil) -> Digest {
        var text = "kiln-host-v1\n"
        for file in files {
            if let d = try? TreeHasher.digest(of: file, cache: cache).digest {
                text += "\(file) \(d)\n"
            } else {
                text += "\(file) missing\n"
            }
        }
        return Digest.of(Array(text.utf8))
    }
}

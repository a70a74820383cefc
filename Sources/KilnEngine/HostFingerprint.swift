import KilnStore
import FoundationEssentials

/// The host toolchain's identity for `image: host`: what the sandbox sees of the host is its /usr
/// and /lib, which the package manager owns, so the digest of the dpkg database and os-release
/// changes when a package is upgraded (and reruns what used it). Computed once per run.
public enum HostFingerprint {
    /// The files fingerprinted; a missing one contributes `missing`.
    public static let files = ["/etc/os-release", "/var/lib/dpkg/status"]

    public static func compute(files: [String] = HostFingerprint.files) -> Digest {
        var text = "kiln-host-v1\n"
        for file in files {
            if let data = FileManager.default.contents(atPath: file) {
                text += "\(file) \(Digest.of(Array(data)))\n"
            } else {
                text += "\(file) missing\n"
            }
        }
        return Digest.of(Array(text.utf8))
    }
}

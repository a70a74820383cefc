import Foundation

/// Root filesystems for image tests, made from Debian's `busybox-static` (one static binary, so
/// the tree needs nothing of the host's /usr).
public enum ImageFixtures {
    public static let busybox = "/bin/busybox"
    /// The applets linked in `bin/`.
    public static let applets = ["sh", "ls", "cat", "echo", "true", "env", "pwd", "id", "test", "mkdir", "cut", "touch", "sleep", "wc"]

    /// Whether /bin/busybox is there (apt-get install busybox-static; scripts/install-dependencies does).
    public static var hasBusybox: Bool { FileManager.default.isExecutableFile(atPath: busybox) }

    /// Makes `bin/busybox`, its applet symlinks and a small `etc/` under `root`.
    public static func makeBusyboxTree(at root: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        try fm.copyItem(atPath: busybox, toPath: root + "/bin/busybox")
        for applet in applets { try fm.createSymbolicLink(atPath: root + "/bin/" + applet, withDestinationPath: "busybox") }
        try "kiln test image\n".write(toFile: root + "/etc/motd", atomically: false, encoding: .utf8)
    }

    /// Writes a tar file at `path` with Python's tarfile (exact names, whiteouts and hostile
    /// entries included): `entries` are (name, kind, content) with kind `file`, `exec`, `dir`,
    /// `symlink` (content = target) or `hardlink` (content = target name).
    public static func writeTar(_ path: String, _ entries: [(String, String, String)]) throws {
        let json = try JSONSerialization.data(withJSONObject: entries.map { [$0.0, $0.1, $0.2] })
        let script = """
            import io, json, sys, tarfile
            entries = json.loads(sys.stdin.read())
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
                for name, kind, content in entries:
                    info = tarfile.TarInfo(name)
                    info.mtime = 1234567
                    data = None
                    if kind in ("file", "exec"):
                        data = content.encode()
                        info.size = len(data)
                        info.mode = 0o755 if kind == "exec" else 0o644
                    elif kind == "dir":
                        info.type = tarfile.DIRTYPE
                        info.mode = 0o755
                    elif kind == "symlink":
                        info.type = tarfile.SYMTYPE
                        info.linkname = content
                    elif kind == "hardlink":
                        info.type = tarfile.LNKTYPE
                        info.linkname = content
                    t.addfile(info, io.BytesIO(data) if data is not None else None)
            """
        let output = ChildProcess.run("/usr/bin/python3", ["-c", script, path], stdin: json)
        guard output.status == 0 else { throw FixtureError("python3 tarfile failed: \(output)") }
    }

    /// The SHA-256 hex of a file.
    public static func sha256(_ path: String) throws -> String {
        let output = ChildProcess.run("/usr/bin/sha256sum", [path])
        guard output.status == 0, let hex = output.stdout.split(separator: " ").first else { throw FixtureError("sha256sum failed: \(output)") }
        return String(hex)
    }

    /// Writes an OCI image layout at `dir` holding the given layer tars (copied in as blobs),
    /// and a config with `env` and `workingDir`. Returns the manifest's digest hex.
    /// With `multiPlatform`, index.json names an image index listing a decoy manifest for another
    /// architecture first (whose layer is missing), then the real one for this machine's.
    @discardableResult
    public static func writeOCILayout(at dir: String, layers: [String], env: [String], workingDir: String, multiPlatform: Bool = false) throws -> String {
        let fm = FileManager.default
        let blobs = dir + "/blobs/sha256"
        try fm.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        func blob(_ data: Data) throws -> (String, Int) {
            let tmp = dir + "/blob.tmp"
            try data.write(to: URL(fileURLWithPath: tmp))
            let hex = try sha256(tmp)
            if !fm.fileExists(atPath: blobs + "/" + hex) { try fm.moveItem(atPath: tmp, toPath: blobs + "/" + hex) } else { try fm.removeItem(atPath: tmp) }
            return (hex, data.count)
        }
        var layerDescriptors: [[String: Any]] = []
        for layer in layers {
            let (hex, size) = try blob(try Data(contentsOf: URL(fileURLWithPath: layer)))
            layerDescriptors.append(["mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + hex, "size": size])
        }
        let config: [String: Any] = ["architecture": "amd64", "os": "linux", "config": ["Env": env, "WorkingDir": workingDir],
                                     "rootfs": ["type": "layers", "diff_ids": layerDescriptors.map { $0["digest"]! }]]
        let (configHex, configSize) = try blob(try JSONSerialization.data(withJSONObject: config))
        let manifest: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + configHex, "size": configSize],
                                       "layers": layerDescriptors]
        let (manifestHex, manifestSize) = try blob(try JSONSerialization.data(withJSONObject: manifest))
        var top: [String: Any] = ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manifestHex, "size": manifestSize]
        if multiPlatform {
            var uts = utsname()
            uname(&uts)
            let machine = withUnsafeBytes(of: uts.machine) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            let arch = machine == "aarch64" ? "arm64" : "amd64"
            let other = arch == "amd64" ? "arm64" : "amd64"
            var decoy = manifest
            decoy["layers"] = [["mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + String(repeating: "0", count: 64), "size": 1]]
            let (decoyHex, decoySize) = try blob(try JSONSerialization.data(withJSONObject: decoy))
            let nested: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
                ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + decoyHex, "size": decoySize, "platform": ["architecture": other, "os": "linux"]],
                ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manifestHex, "size": manifestSize, "platform": ["architecture": arch, "os": "linux"]],
            ]]
            let (nestedHex, nestedSize) = try blob(try JSONSerialization.data(withJSONObject: nested))
            top = ["mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + nestedHex, "size": nestedSize]
        }
        let index: [String: Any] = ["schemaVersion": 2, "manifests": [top]]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: dir + "/index.json"))
        try #"{"imageLayoutVersion":"1.0.0"}"#.write(toFile: dir + "/oci-layout", atomically: false, encoding: .utf8)
        return manifestHex
    }

    /// Writes a `docker save` directory at `dir` (manifest.json, config, layer dirs) for the layers.
    public static func writeDockerArchive(at dir: String, layers: [String], env: [String], workingDir: String) throws {
        let fm = FileManager.default
        var names: [String] = []
        for (i, layer) in layers.enumerated() {
            try fm.createDirectory(atPath: dir + "/layer\(i)", withIntermediateDirectories: true)
            try fm.copyItem(atPath: layer, toPath: dir + "/layer\(i)/layer.tar")
            names.append("layer\(i)/layer.tar")
        }
        let config: [String: Any] = ["config": ["Env": env, "WorkingDir": workingDir]]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let manifest: [[String: Any]] = [["Config": "config.json", "RepoTags": ["test:latest"], "Layers": names]]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

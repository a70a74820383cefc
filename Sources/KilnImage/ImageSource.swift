#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import KilnStore

/// What `kiln image import SOURCE` reads, once recognised: a root tree as it is, or layers to
/// apply in order with the image config's defaults.
struct ImageSource {
    enum Content {
        /// A directory that is the root filesystem.
        case directory(String)
        /// Tar layers (paths), bottom first.
        case layers([String])
    }

    var content: Content
    var env: [String] = []
    var workingDir: String?
    /// `directory`, `tar`, `oci-layout`, `docker-archive`.
    var kind: String

    /// Recognises `path`: an OCI image layout directory (`oci-layout` + `index.json`), a
    /// `docker save` directory (`manifest.json`), either of those as a tar archive, a plain
    /// directory, or a tar archive of a root filesystem (any compression libarchive reads).
    /// Archives of layouts are unpacked into `staging`.
    static func recognise(_ path: String, staging: String) throws(StoreError) -> ImageSource {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw StoreError(.notFound, "the image source \(path) does not exist: give a directory, a tar archive, an OCI image layout or a `docker save` archive.")
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            if isFile(path + "/index.json") && isFile(path + "/oci-layout") { return try ociLayout(path) }
            if isFile(path + "/manifest.json") { return try dockerArchive(path) }
            return ImageSource(content: .directory(path), kind: "directory")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw StoreError(.invalidArgument, "the image source \(path) is neither a directory nor a file.")
        }
        let names = Set(try LayerApplier.names(inArchive: path, shown: path).map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : $0 })
        let isLayout = names.contains("index.json") && names.contains("oci-layout")
        if isLayout || names.contains("manifest.json") {
            let unpacked = staging + "/source"
            _ = try SafeExtractor(keepsAnySymlink: false).extract(archive: path, to: unpacked)
            var source = isLayout ? try ociLayout(unpacked) : try dockerArchive(unpacked)
            source.kind = isLayout ? "oci-archive" : "docker-archive"
            return source
        }
        return ImageSource(content: .layers([path]), kind: "tar")
    }

    static func isFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
    }

    static func readJSON<T: Decodable>(_ type: T.Type, _ path: String, what: String) throws(StoreError) -> T {
        guard let bytes = readFile(path) else {
            throw StoreError(.notFound, "\(what) \(path) is missing or unreadable.")
        }
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw StoreError(.refused, "\(what) \(path) is not the JSON kiln expects (\(error)).")
        }
    }

    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { return nil }
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    }

    /// The SHA-256 of a file's bytes.
    static func fileDigest(_ path: String) -> Digest? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var hasher = Hasher256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 { return nil }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return hasher.finalize()
    }

    // MARK: OCI image layout

    struct Descriptor: Decodable {
        var mediaType: String?
        var digest: String
        var platform: Platform?
    }
    struct Platform: Decodable {
        var architecture: String?
        var os: String?
    }
    struct Index: Decodable { var manifests: [Descriptor] }
    struct Manifest: Decodable {
        var mediaType: String?
        var config: Descriptor?
        var layers: [Descriptor]?
        var manifests: [Descriptor]?
    }
    struct ConfigFile: Decodable {
        struct Config: Decodable {
            var Env: [String]?
            var WorkingDir: String?
        }
        var config: Config?
    }

    /// The layout's blob named by `digest`, checked against it.
    static func blob(_ layout: String, _ digestText: String, what: String) throws(StoreError) -> String {
        guard let d = Digest(digestText) else {
            throw StoreError(.refused, "the OCI layout \(layout) names \(what) by '\(digestText)', which is not a sha256 digest.")
        }
        let path = "\(layout)/blobs/sha256/\(d.hex)"
        guard let actual = fileDigest(path) else {
            throw StoreError(.notFound, "the OCI layout \(layout) lacks \(what) \(d) (no file blobs/sha256/\(d.hex)).")
        }
        guard actual == d else {
            throw StoreError(.corrupt, "the OCI layout \(layout): blob \(what) blobs/sha256/\(d.hex) hashes to \(actual), not to its name. Copy the image again.")
        }
        return path
    }

    /// The host's architecture in OCI's spelling.
    static var hostArchitecture: String {
        var name = utsname()
        uname(&name)
        let machine = withUnsafeBytes(of: name.machine) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        default: return machine
        }
    }

    /// Picks the manifest for this host from an index's list (the only one, or the one whose
    /// platform is linux on this architecture).
    static func pick(_ manifests: [Descriptor], layout: String) throws(StoreError) -> Descriptor {
        if manifests.count == 1 { return manifests[0] }
        let arch = hostArchitecture
        if let match = manifests.first(where: { $0.platform?.architecture == arch && ($0.platform?.os ?? "linux") == "linux" }) { return match }
        if let first = manifests.first, manifests.allSatisfy({ $0.platform == nil }) { return first }
        throw StoreError(.notFound, "the OCI layout \(layout) has \(manifests.count) manifests and none for linux/\(arch): copy the image for this platform (skopeo copy --override-arch \(arch) …).")
    }

    static func ociLayout(_ layout: String) throws(StoreError) -> ImageSource {
        let index = try readJSON(Index.self, layout + "/index.json", what: "the OCI index")
        guard !index.manifests.isEmpty else { throw StoreError(.refused, "the OCI index \(layout)/index.json lists no manifest.") }
        var descriptor = try pick(index.manifests, layout: layout)
        var manifest: Manifest
        var depth = 0
        while true {
            manifest = try readJSON(Manifest.self, try blob(layout, descriptor.digest, what: "the manifest"), what: "the OCI manifest")
            guard let nested = manifest.manifests else { break }
            depth += 1
            if depth > 4 { throw StoreError(.refused, "the OCI layout \(layout) nests indexes more than 4 deep.") }
            descriptor = try pick(nested, layout: layout)
        }
        var layers: [String] = []
        for layer in manifest.layers ?? [] {
            if let type = layer.mediaType, type.contains("foreign") || type.contains("nondistributable") {
                throw StoreError(.refused, "the OCI layout \(layout) has a non-distributable layer \(layer.digest) that is not in the layout.")
            }
            layers.append(try blob(layout, layer.digest, what: "the layer"))
        }
        var source = ImageSource(content: .layers(layers), kind: "oci-layout")
        if let config = manifest.config {
            let file = try readJSON(ConfigFile.self, try blob(layout, config.digest, what: "the config"), what: "the image config")
            source.env = file.config?.Env ?? []
            source.workingDir = file.config?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 }
        }
        return source
    }

    // MARK: docker save

    struct DockerManifest: Decodable {
        var Config: String
        var Layers: [String]
    }

    /// A path inside the unpacked archive, refusing absolute names and `..`.
    static func inside(_ root: String, _ relative: String, what: String) throws(StoreError) -> String {
        let parts = relative.split(separator: "/")
        guard !relative.hasPrefix("/"), !parts.contains(".."), !parts.isEmpty else {
            throw StoreError(.refused, "the docker archive's manifest.json names \(what) '\(relative)', which is outside the archive.")
        }
        return root + "/" + parts.joined(separator: "/")
    }

    static func dockerArchive(_ root: String) throws(StoreError) -> ImageSource {
        let manifests = try readJSON([DockerManifest].self, root + "/manifest.json", what: "the docker manifest")
        guard manifests.count == 1, let manifest = manifests.first else {
            throw StoreError(.refused, "the docker archive \(root) holds \(manifests.count) images; kiln imports one: `docker save` a single image.")
        }
        var layers: [String] = []
        for layer in manifest.Layers {
            let path = try inside(root, layer, what: "the layer")
            guard isFile(path) else { throw StoreError(.notFound, "the docker archive \(root) lacks its layer \(layer).") }
            layers.append(path)
        }
        var source = ImageSource(content: .layers(layers), kind: "docker-archive")
        let file = try readJSON(ConfigFile.self, try inside(root, manifest.Config, what: "the config"), what: "the image config")
        source.env = file.config?.Env ?? []
        source.workingDir = file.config?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 }
        return source
    }
}

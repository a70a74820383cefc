import Foundation
import KilnImage
import KilnStore
import KilnTestSupport
import Testing

/// Importing images: one digest per content, layers with whiteouts, configs, hostile layers.
@Suite(.serialized, .enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
struct ImageImportTests {
    @Test func sameContentGivesOneDigestWhateverTimesOwnersOrderOrContainer() throws {
        let scratch = ScratchDirectory("kiln-image-same")
        let images = ImageStore(store: try Store(root: scratch("cache")))
        try ImageFixtures.makeBusyboxTree(at: scratch("a"))
        let first = try images.importImage(from: scratch("a"), name: "bb")

        // The same files written in another order, with other times and (as root) other owners.
        try FileManager.default.createDirectory(atPath: scratch("b/etc"), withIntermediateDirectories: true)
        try "kiln test image\n".write(toFile: scratch("b/etc/motd"), atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: scratch("b/bin"), withIntermediateDirectories: true)
        for applet in ImageFixtures.applets.reversed() {
            try FileManager.default.createSymbolicLink(atPath: scratch("b/bin/" + applet), withDestinationPath: "busybox")
        }
        try FileManager.default.copyItem(atPath: ImageFixtures.busybox, toPath: scratch("b/bin/busybox"))
        var touch = ChildProcess.shell("touch -h -d '2001-02-03 04:05:06' $(find '\(scratch("b"))') && chmod 700 '\(scratch("b/etc"))'")
        #expect(touch.status == 0, "\(touch)")
        if geteuid() == 0 {
            touch = ChildProcess.shell("chown -hR 1234:5678 '\(scratch("b"))'")
            #expect(touch.status == 0, "\(touch)")
        }
        let second = try images.importImage(from: scratch("b"), name: "bb-again")
        #expect(second.digest == first.digest)

        // And from a compressed tar of the tree, with owners and a ./ prefix.
        let tar = ChildProcess.shell("tar -C '\(scratch("b"))' --owner=42 --group=42 -czf '\(scratch("bb.tar.gz"))' .")
        #expect(tar.status == 0, "\(tar)")
        let third = try images.importImage(from: scratch("bb.tar.gz"), name: "bb-tar")
        #expect(third.digest == first.digest)
        #expect(third.record?.createdFrom == "tar")
        #expect(first.reference == "bb@\(first.digest)")
        #expect(images.list().map(\.name) == ["bb", "bb-again", "bb-tar"])
    }

    /// Two layers: the second whites out a file and makes a directory opaque.
    static func layers(in scratch: ScratchDirectory) throws -> [String] {
        try ImageFixtures.writeTar(scratch("layer1.tar"), [
            ("./bin/", "dir", ""), ("./bin/hello", "exec", "#!/bin/sh\necho hello\n"), ("./bin/sh", "symlink", "/bin/busybox"),
            ("./etc/", "dir", ""), ("./etc/keep", "file", "kept"), ("./etc/gone", "file", "removed by layer 2"),
            ("./opt/old/", "dir", ""), ("./opt/old/a", "file", "a"), ("./opt/old/sub/b", "file", "b"),
            ("./data/linked", "hardlink", "etc/keep"),
        ])
        try ImageFixtures.writeTar(scratch("layer2.tar"), [
            ("etc/.wh.gone", "file", ""), ("opt/old/c", "file", "c"), ("opt/old/.wh..wh..opq", "file", ""),
            ("etc/keep", "file", "replaced"), ("usr/", "dir", ""), ("ghost/dir/.wh.x", "file", ""),
        ])
        return [scratch("layer1.tar"), scratch("layer2.tar")]
    }

    func tree(_ root: String) -> [String] {
        (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
    }

    @Test func ociLayoutAppliesLayersWithWhiteoutsAndKeepsEnvAndWorkingDir() throws {
        let scratch = ScratchDirectory("kiln-image-oci")
        let images = ImageStore(store: try Store(root: scratch("cache")))
        let layers = try Self.layers(in: scratch)
        let env = ["PATH=/bin", "GREETING=hello world"]
        try ImageFixtures.writeOCILayout(at: scratch("oci"), layers: layers, env: env, workingDir: "/opt")
        let image = try images.importImage(from: scratch("oci"), name: "layered")
        #expect(image.record?.env == env)
        #expect(image.record?.workingDir == "/opt")
        #expect(image.record?.createdFrom == "oci-layout")

        let root = try images.root(of: image)
        #expect(tree(root) == ["bin", "bin/hello", "bin/sh", "data", "data/linked", "dev", "etc", "etc/group", "etc/hostname", "etc/hosts",
                               "etc/keep", "etc/nsswitch.conf", "etc/passwd", "opt", "opt/old", "opt/old/c", "proc", "tmp", "usr", "work"],
                "the whiteout removed etc/gone, the opaque marker removed opt/old's lower contents, no .wh. file is left; the empty mount points were added")
        #expect(try String(contentsOfFile: root + "/etc/keep", encoding: .utf8) == "replaced")
        #expect(try String(contentsOfFile: root + "/data/linked", encoding: .utf8) == "kept", "a hardlink keeps the content it had")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/bin/sh") == "/bin/busybox", "absolute symlinks are kept as they are")
        #expect(FileManager.default.isExecutableFile(atPath: root + "/bin/hello"))

        // The same image as a docker archive, and the layout as a tar, give the same digest.
        try ImageFixtures.writeDockerArchive(at: scratch("docker"), layers: layers, env: env, workingDir: "/opt")
        let fromDocker = try images.importImage(from: scratch("docker"), name: "layered-docker")
        #expect(fromDocker.digest == image.digest)
        #expect(fromDocker.record?.env == env)
        #expect(fromDocker.record?.createdFrom == "docker-archive")
        let tar = ChildProcess.shell("tar -C '\(scratch("oci"))' -cf '\(scratch("oci.tar"))' .")
        #expect(tar.status == 0, "\(tar)")
        let fromArchive = try images.importImage(from: scratch("oci.tar"), name: "layered-archive")
        #expect(fromArchive.digest == image.digest)
        #expect(fromArchive.record?.createdFrom == "oci-archive")

        // The extracted tree is derived: deleted, it comes back from the blob.
        try FileManager.default.removeItem(atPath: root)
        #expect(try images.root(of: image) == root)
        #expect(FileManager.default.fileExists(atPath: root + "/opt/old/c"))
    }

    @Test func multiPlatformIndexAndCompressedLayersAndADockerTarball() throws {
        let scratch = ScratchDirectory("kiln-image-oci-multi")
        let images = ImageStore(store: try Store(root: scratch("cache")))
        let layers = try Self.layers(in: scratch)
        try ImageFixtures.writeOCILayout(at: scratch("plain"), layers: layers, env: [], workingDir: "/")
        let plain = try images.importImage(from: scratch("plain"), name: "plain")

        // gzip and zstd layers behind an image index that lists another architecture first.
        let gz = ChildProcess.shell("gzip -kn '\(layers[0])' && zstd -q '\(layers[1])'")
        #expect(gz.status == 0, "\(gz)")
        try ImageFixtures.writeOCILayout(at: scratch("multi"), layers: [layers[0] + ".gz", layers[1] + ".zst"], env: [], workingDir: "/", multiPlatform: true)
        let multi = try images.importImage(from: scratch("multi"), name: "multi")
        #expect(multi.digest == plain.digest, "this machine's manifest was picked and the compressed layers read")

        // `docker save` writes a tar file.
        try ImageFixtures.writeDockerArchive(at: scratch("docker"), layers: layers, env: [], workingDir: "/")
        let tar = ChildProcess.shell("tar -C '\(scratch("docker"))' -cf '\(scratch("saved.tar"))' .")
        #expect(tar.status == 0, "\(tar)")
        let saved = try images.importImage(from: scratch("saved.tar"), name: "saved")
        #expect(saved.digest == plain.digest)
        #expect(saved.record?.createdFrom == "docker-archive")
    }

    @Test func ociBlobThatDoesNotMatchItsDigestIsRefused() throws {
        let scratch = ScratchDirectory("kiln-image-oci-corrupt")
        let images = ImageStore(store: try Store(root: scratch("cache")))
        let layers = try Self.layers(in: scratch)
        try ImageFixtures.writeOCILayout(at: scratch("oci"), layers: layers, env: [], workingDir: "/")
        let hex = try ImageFixtures.sha256(layers[0])
        try FileManager.default.removeItem(atPath: scratch("oci/blobs/sha256/" + hex))
        try FileManager.default.copyItem(atPath: layers[1], toPath: scratch("oci/blobs/sha256/" + hex))
        let error = #expect(throws: StoreError.self) { try images.importImage(from: scratch("oci"), name: "corrupt") }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains(hex) == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("../x", "has a '..' component"),
        ("ok/../../x", "has a '..' component"),
        ("/etc/passwd", "is an absolute path"),
        ("link/passwd", "would be written through the symlink"),
    ])
    func hostileLayerIsRefusedNamingTheEntry(name: String, why: String) throws {
        let scratch = ScratchDirectory("kiln-image-hostile")
        let store = try Store(root: scratch("cache"))
        let images = ImageStore(store: store)
        try ImageFixtures.writeTar(scratch("evil.tar"), [("ok/", "dir", ""), ("link", "symlink", "/etc"), (name, "file", "pwned")])
        let error = #expect(throws: StoreError.self) { try images.importImage(from: scratch("evil.tar"), name: "evil") }
        #expect(error?.code == .refused)
        #expect(error?.message.contains("entry '\(name)' \(why)") == true, "\(String(describing: error))")
        #expect(images.list().isEmpty, "nothing was imported")
        #expect(!FileManager.default.fileExists(atPath: "/etc/passwd.kiln") && !FileManager.default.fileExists(atPath: scratch("x")))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch("cache/tmp")))?.isEmpty ?? true, "no staging left behind")
    }

    @Test func dockerManifestNamingAPathOutsideIsRefused() throws {
        let scratch = ScratchDirectory("kiln-image-docker-hostile")
        let images = ImageStore(store: try Store(root: scratch("cache")))
        let layers = try Self.layers(in: scratch)
        try ImageFixtures.writeDockerArchive(at: scratch("docker"), layers: layers, env: [], workingDir: "/")
        try #"[{"Config":"config.json","Layers":["layer0/layer.tar","../../../etc/passwd"]}]"#
            .write(toFile: scratch("docker/manifest.json"), atomically: false, encoding: .utf8)
        let error = #expect(throws: StoreError.self) { try images.importImage(from: scratch("docker"), name: "evil") }
        #expect(error?.code == .refused)
        #expect(error?.message.contains("'../../../etc/passwd', which is outside the archive") == true, "\(String(describing: error))")
    }

    @Test func inspectListsDebianPackages() throws {
        let scratch = ScratchDirectory("kiln-image-dpkg")
        try ImageFixtures.makeBusyboxTree(at: scratch("root"))
        try FileManager.default.createDirectory(atPath: scratch("root/var/lib/dpkg"), withIntermediateDirectories: true)
        try """
            Package: zlib1g
            Status: install ok installed
            Architecture: amd64
            Version: 1:1.2.13.dfsg-1

            Package: removed
            Status: deinstall ok config-files
            Version: 1.0

            Package: busybox-static
            Status: install ok installed
            Version: 1:1.35.0-4+b3
            Description: a multi-line
             description

            """.write(toFile: scratch("root/var/lib/dpkg/status"), atomically: false, encoding: .utf8)
        let imported = ChildProcess.kiln(["image", "import", scratch("root"), "--name", "deb", "--cache", scratch("cache")])
        #expect(imported.status == 0, "\(imported)")
        let output = ChildProcess.kiln(["image", "inspect", "deb", "--json", "--cache", scratch("cache")])
        #expect(output.status == 0, "\(output)")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "\(output)")
        let packages = try #require(info["packages"] as? [[String: Any]])
        #expect(packages.map { $0["name"] as? String } == ["busybox-static", "zlib1g"])
        #expect(packages.map { $0["version"] as? String } == ["1:1.35.0-4+b3", "1:1.2.13.dfsg-1"])
        #expect(info["reference"] as? String == imported.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect((info["entries"] as? Int ?? 0) > ImageFixtures.applets.count)
    }
}

/// gc and images: a named image survives gc; once unnamed, its blobs and extracted tree go.
@Suite(.enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
struct ImageGCTests {
    @Test func gcKeepsNamedImagesAndDropsUnnamedOnesWithTheirTrees() throws {
        let scratch = ScratchDirectory("kiln-image-gc")
        let store = try Store(root: scratch("cache"))
        let images = ImageStore(store: store)
        try ImageFixtures.makeBusyboxTree(at: scratch("root"))
        let image = try images.importImage(from: scratch("root"), name: "bb")
        let root = try images.root(of: image)
        _ = try store.collectGarbage(GCPolicy())
        #expect(store.contains(image.digest) && store.contains(image.recordDigest!), "refs/images/bb keeps the record and the archive it names")
        #expect(FileManager.default.fileExists(atPath: root))

        #expect(try images.remove(image, force: false) == ["bb"])
        #expect(!FileManager.default.fileExists(atPath: root))
        _ = try images.root(of: image)  // extracted again while the blob is still there
        let report = try store.collectGarbage(GCPolicy())
        #expect(Set(report.removedBlobs.map(\.digest)) == [image.digest, image.recordDigest!])
        #expect(!FileManager.default.fileExists(atPath: root), "gc removes the tree of a deleted archive")
    }
}

import Foundation
import KilnImage
import KilnStore
import KilnTestSupport
import Testing

/// `kiln sandbox run --image` and `kiln image ls/rm`, through the real CLI.
@Suite(.serialized, .enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
struct ImageSandboxTests {
    /// A cache with the busybox image imported as `bb`; returns its reference.
    func importBusybox(_ scratch: ScratchDirectory) throws -> String {
        try ImageFixtures.makeBusyboxTree(at: scratch("root"))
        let output = ChildProcess.kiln(["image", "import", scratch("root"), "--name", "bb", "--cache", scratch("cache")])
        #expect(output.status == 0, "\(output)")
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aCommandRunsOnTheImageAndCannotSeeTheHostsUsr() throws {
        #expect(FileManager.default.fileExists(atPath: "/usr/bin/python3"), "the host has python3, so its absence inside means something")
        let scratch = ScratchDirectory("kiln-image-run")
        let reference = try importBusybox(scratch)
        #expect(reference.hasPrefix("bb@sha256:"))
        let digest = String(reference.dropFirst(3))
        for ref in [reference, digest, "bb"] {
            let output = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", ref, "--",
                                            "sh", "-c", "echo hi from $(id -un); test -e /usr/bin/python3 && echo host-usr-visible; ls /; cat /etc/motd; grep kiln /etc/passwd; cat /etc/hostname"])
            #expect(output.status == 0, "\(ref): \(output)")
            #expect(output.stdout == "hi from kiln\nbin\ndev\netc\nproc\ntmp\nwork\nkiln test image\nkiln:x:1000:1000:kiln:/tmp/home:/bin/sh\nkiln\n", "\(ref): \(output)")
        }
        // The image is read-only; /tmp is not.
        let write = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "bb", "--", "sh", "-c", "touch /tmp/ok && touch /etc/motd"])
        #expect(write.status == 1, "\(write)")
        #expect(write.stderr.contains("Read-only file system"), "\(write)")
        // The host's toolchain is what a run without --image gets.
        let host = ChildProcess.kiln(["sandbox", "run", "--", "/bin/sh", "-c", "test -e /usr/bin/python3 && echo host"])
        #expect(host.stdout == "host\n", "\(host)")
    }

    @Test func mountsTheImageLacksAPlaceForStillWork() throws {
        let scratch = ScratchDirectory("kiln-image-mounts")
        _ = try importBusybox(scratch)
        try FileManager.default.createDirectory(atPath: scratch("data"), withIntermediateDirectories: true)
        try "x\n".write(toFile: scratch("data/x"), atomically: false, encoding: .utf8)
        // /work/in lies inside /work, which the tree has: the whole tree is the root.
        let inside = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "bb", "--ro-bind", scratch("data"), "/work/in",
                                        "--", "sh", "-c", "cat /work/in/x; ls /"])
        #expect(inside.stdout == "x\nbin\ndev\netc\nproc\ntmp\nwork\n", "\(inside)")
        // /data is not in the image: / is built entry by entry instead, with /data on it.
        let outside = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "bb", "--ro-bind", scratch("data"), "/data",
                                         "--", "sh", "-c", "cat /data/x; ls /; test -e /usr && echo usr; true"])
        #expect(outside.status == 0, "\(outside)")
        #expect(outside.stdout == "x\nbin\ndata\ndev\netc\nproc\ntmp\n", "\(outside)")
        // Below one of the image's own read-only directories, the mount point must exist.
        let below = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "bb", "--ro-bind", scratch("data"), "/bin/data",
                                       "--", "true"])
        #expect(below.status == 64, "\(below)")
        #expect(below.stderr.contains("mount target \"/bin/data\" does not exist in the image"), "\(below)")
    }

    @Test func imageEnvAndWorkingDirAreTheDefaults() throws {
        let scratch = ScratchDirectory("kiln-image-env")
        try ImageFixtures.makeBusyboxTree(at: scratch("root"))
        try FileManager.default.createDirectory(atPath: scratch("root/srv/app"), withIntermediateDirectories: true)
        let tar = ChildProcess.shell("tar -C '\(scratch("root"))' -cf '\(scratch("layer.tar"))' .")
        #expect(tar.status == 0, "\(tar)")
        try ImageFixtures.writeOCILayout(at: scratch("oci"), layers: [scratch("layer.tar")], env: ["PATH=/bin", "GREETING=hello"], workingDir: "/srv/app")
        let imported = ChildProcess.kiln(["image", "import", scratch("oci"), "--name", "app", "--cache", scratch("cache")])
        #expect(imported.status == 0, "\(imported)")
        let output = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "app", "--env", "EXTRA=1", "--",
                                        "sh", "-c", "echo $GREETING $PATH $EXTRA; pwd"])
        #expect(output.stdout == "hello /bin 1\n/srv/app\n", "\(output)")
        let overridden = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "app", "--env", "GREETING=bye", "--cwd", "/", "--",
                                            "sh", "-c", "echo $GREETING; pwd"])
        #expect(overridden.stdout == "bye\n/\n", "\(overridden)")
    }

    @Test func unknownImageSaysHowToGetIt() throws {
        let scratch = ScratchDirectory("kiln-image-unknown")
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let output = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "nope@" + digest, "--", "sh"])
        #expect(output.status == 1, "\(output)")
        #expect(output.stderr.contains("kiln image import"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: scratch("cache")), "looking for an image creates no cache")
        #expect(output.stderr.contains("there is no cache at"), "\(output)")
        _ = try Store(root: scratch("cache"))
        let byName = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "nope", "--", "sh"])
        #expect(byName.status == 1, "\(byName)")
        #expect(byName.stderr.contains("no image named 'nope'"), "\(byName)")
        let byDigest = ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "nope@" + digest, "--", "sh"])
        #expect(byDigest.stderr.contains("is not in the cache") && byDigest.stderr.contains("kiln image import"), "\(byDigest)")
        let json = ChildProcess.kiln(["sandbox", "run", "--json", "--cache", scratch("cache"), "--image", "nope", "--", "sh"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json)")
        #expect((report["error"] as? [String: Any])?["code"] as? String == "image.notFound", "\(json)")
        #expect(report["kilnExitCode"] as? Int == 1)
    }

    @Test func rmIsRefusedWhileAKeptRunNamesTheImageAndForcedOtherwise() throws {
        let scratch = ScratchDirectory("kiln-image-rm")
        let reference = try importBusybox(scratch)
        let digest = try #require(Digest(String(reference.dropFirst(3))))
        let store = try Store(root: scratch("cache"))
        let record = try store.put(bytes: Array(#"{"image":"\#(digest)","stages":[]}"#.utf8))
        try store.addRun("run-1", record: record)

        let refused = ChildProcess.kiln(["image", "rm", "bb", "--cache", scratch("cache")])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("run-1"), "\(refused)")
        #expect(refused.stderr.contains("--force"), "\(refused)")
        let listed = ChildProcess.kiln(["image", "ls", "--json", "--cache", scratch("cache")])
        #expect(listed.stdout.contains(digest.description), "still there: \(listed)")

        let forced = ChildProcess.kiln(["image", "rm", "bb", "--force", "--cache", scratch("cache")])
        #expect(forced.status == 0, "\(forced)")
        let after = ChildProcess.kiln(["image", "ls", "--json", "--cache", scratch("cache")])
        #expect(after.stdout.isEmpty, "\(after)")
        #expect(!FileManager.default.fileExists(atPath: scratch("cache/images/" + digest.hex)))

        // Without runs naming it, rm needs no --force.
        let again = ChildProcess.kiln(["image", "import", scratch("root"), "--name", "bb2", "--cache", scratch("cache")])
        #expect(again.status == 0, "\(again)")
        try FileManager.default.removeItem(atPath: scratch("cache/runs/run-1"))
        let plain = ChildProcess.kiln(["image", "rm", "bb2", "--cache", scratch("cache")])
        #expect(plain.status == 0, "\(plain)")
    }
}

/// A tree in use by a sandbox is not deleted under it.
@Suite(.enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
struct ImageInUseTests {
    /// Synchronous on purpose: it keeps its thread while the sandbox runs. Other suites block pool
    /// threads reading pipes that a long-lived child can inherit; a test that suspended here could
    /// wait for a pool thread those reads hold until this sandbox ends.
    @Test func rmAndGcLeaveTheTreeOfARunningSandbox() throws {
        let scratch = ScratchDirectory("kiln-image-inuse")
        try ImageFixtures.makeBusyboxTree(at: scratch("root"))
        let imported = ChildProcess.kiln(["image", "import", scratch("root"), "--name", "bb", "--cache", scratch("cache")])
        #expect(imported.status == 0, "\(imported)")
        let hex = String(imported.stdout.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst("bb@sha256:".count))
        try FileManager.default.createDirectory(atPath: scratch("signal"), withIntermediateDirectories: true)
        // The command waits for signal/go, which the test makes after rm and gc (or after 20 s).
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var output: ChildProcess.Output?
        Thread.detachNewThread {
            output = ChildProcess.kiln([
                "sandbox", "run", "--cache", scratch("cache"), "--image", "bb", "--ro-bind", scratch("signal"), "/work/signal", "--",
                "sh", "-c", "i=0; while ! test -e /work/signal/go && test $i -lt 400; do sleep 0.05; i=$((i+1)); done; cat /etc/motd"])
            done.signal()
        }
        // The sandbox takes its hold before it extracts the tree: once the tree is there, it is held.
        var waited = 0
        while !FileManager.default.fileExists(atPath: scratch("cache/images/" + hex + "/bin")) && waited < 1000 {
            usleep(20_000)
            waited += 1
        }
        let removed = ChildProcess.kiln(["image", "rm", "bb", "--cache", scratch("cache")])
        #expect(removed.status == 0, "\(removed)")
        #expect(removed.stderr.contains("in use by a running sandbox"), "\(removed)")
        let gc = ChildProcess.kiln(["cache", "gc", "--cache", scratch("cache")])
        #expect(gc.status == 0, "\(gc)")
        try "".write(toFile: scratch("signal/go"), atomically: false, encoding: .utf8)
        done.wait()
        #expect(output?.status == 0, "\(String(describing: output))")
        #expect(output?.stdout == "kiln test image\n", "the tree stayed whole under the sandbox: \(String(describing: output))")
        let again = ChildProcess.kiln(["cache", "gc", "--cache", scratch("cache")])
        #expect(again.status == 0, "\(again)")
        #expect(!FileManager.default.fileExists(atPath: scratch("cache/images/" + hex)), "gc removes it once it is free")
        #expect(!FileManager.default.fileExists(atPath: scratch("cache/images/" + hex + ".lock")), "and its lock file")
    }
}

/// First use extracts the image; processes starting at once must each see a whole tree.
@Suite(.enabled(if: ImageFixtures.hasBusybox, "needs /bin/busybox: apt-get install busybox-static (scripts/install-dependencies)"))
struct ImageExtractionTests {
    @Test func concurrentFirstUsesSeeWholeTrees() async throws {
        let scratch = ScratchDirectory("kiln-image-race")
        try ImageFixtures.makeBusyboxTree(at: scratch("root"))
        // Many files, so a half-extracted tree would be seen missing some.
        try FileManager.default.createDirectory(atPath: scratch("root/data"), withIntermediateDirectories: true)
        for i in 0..<400 { try "\(i)\n".write(toFile: scratch("root/data/f\(i)"), atomically: false, encoding: .utf8) }
        let imported = ChildProcess.kiln(["image", "import", scratch("root"), "--name", "race", "--cache", scratch("cache")])
        #expect(imported.status == 0, "\(imported)")
        let outputs = await withTaskGroup(of: ChildProcess.Output.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        Thread.detachNewThread {
                            continuation.resume(returning: ChildProcess.kiln(["sandbox", "run", "--cache", scratch("cache"), "--image", "race", "--",
                                                                              "sh", "-c", "ls /data | wc -l"]))
                        }
                    }
                }
            }
            var all: [ChildProcess.Output] = []
            for await output in group { all.append(output) }
            return all
        }
        for output in outputs {
            #expect(output.status == 0, "\(output)")
            #expect(output.stdout.trimmingCharacters(in: .whitespaces) == "400\n", "\(output)")
        }
        let images = try FileManager.default.contentsOfDirectory(atPath: scratch("cache/images")).filter { !$0.hasSuffix(".lock") }
        #expect(images.count == 1, "one tree, no leftovers: \(images)")
        #expect((try FileManager.default.contentsOfDirectory(atPath: scratch("cache/tmp"))).isEmpty, "staging removed")
    }
}

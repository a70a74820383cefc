import Foundation
import KilnStore
import KilnTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Files under `dir` (recursive), relative, sorted.
func listFiles(_ dir: String) -> [String] {
    guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
    return (e.allObjects as? [String] ?? []).filter { path in
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: dir + "/" + path, isDirectory: &isDir) && !isDir.boolValue
    }.sorted()
}

@Suite struct StoreTests {
    @Test func putReadAndExistsIsSuccess() throws {
        let dir = ScratchDirectory()
        let store = try Store(root: dir("cache"))
        for sub in ["cas/sha256", "ac", "runs", "refs", "tmp"] {
            #expect(FileManager.default.fileExists(atPath: dir("cache/\(sub)")), "layout: \(sub)")
        }
        let bytes = Array("hello\n".utf8)
        let d = try store.put(bytes: bytes)
        #expect(d == Digest.of(bytes))
        #expect(store.blobPath(d) == dir("cache/cas/sha256/58/\(d.hex)"))
        #expect(try store.put(bytes: bytes) == d, "storing what exists already is success")
        #expect(try store.read(d) == bytes)
        #expect(listFiles(dir("cache/cas")) == ["sha256/58/\(d.hex)"])
        #expect(listFiles(dir("cache/tmp")).isEmpty)
        let mode = try FileManager.default.attributesOfItem(atPath: store.blobPath(d))[.posixPermissions] as? Int
        #expect(mode == 0o444, "blobs are read-only")
        let missing = Digest.of(Array("nope".utf8))
        let error = #expect(throws: StoreError.self) { try store.read(missing) }
        #expect(error?.code == .notFound)
    }

    @Test func bigFilesStreamThroughAndMatchSha256sum() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("head -c 5000000 /dev/urandom > '\(dir.path)/big'").status == 0)
        let store = try Store(root: dir("cache"))
        let d = try store.put(file: dir("big"))
        #expect(d.hex == String(ChildProcess.run("/usr/bin/sha256sum", [dir("big")]).stdout.prefix(64)))
        let r = ChildProcess.kiln(["cache", "cat", "--cache", dir("cache"), d.description])
        #expect(r.status == 0)
        #expect(r.stdout.utf8.count > 0)
    }

    @Test func refsRunsAndActionResults() throws {
        let dir = ScratchDirectory()
        let store = try Store(root: dir("cache"))
        let d = try store.put(bytes: [1, 2, 3])
        try store.setRef("images/python@3.11", to: d)
        #expect(try store.ref("images/python@3.11") == d)
        #expect(try store.ref("images/none") == nil)
        #expect(throws: StoreError.self) { try store.setRef("../escape", to: d) }
        #expect(throws: StoreError.self) { try store.setRef("a//b", to: d) }
        try store.addRun("20261126-0001", record: d)
        #expect(try store.run("20261126-0001") == d)
        let key = Digest.of(Array("key".utf8))
        try store.setActionResult(key, json: Array(#"{"out":"\#(d)"}"#.utf8))
        #expect(try store.actionResult(key) == Array(#"{"out":"\#(d)"}"#.utf8))
        #expect(FileManager.default.fileExists(atPath: dir("cache/ac/\(key.hex.prefix(2))/\(key.hex)")))
    }

    /// Flip one byte of a blob: reads refuse it naming the file, verify quarantines it, cat prints nothing.
    @Test func corruptionIsDetectedReportedAndQuarantined() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir t && echo model > t/m && head -c 300000 /dev/urandom > t/weights", currentDirectory: dir.path).status == 0)
        let store = try Store(root: dir("cache"))
        let good = try store.put(bytes: Array("fine".utf8))
        let archive = try ArchiveWriter().store(source: dir("t"), in: store).digest!
        let path = store.blobPath(archive)
        #expect(ChildProcess.shell("chmod u+w '\(path)' && printf 'X' | dd of='\(path)' bs=1 seek=200000 conv=notrunc 2>/dev/null").status == 0)

        let error = #expect(throws: StoreError.self) { try store.read(archive) }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains(path) == true, "the message names the file: \(error?.message ?? "")")

        let cat = ChildProcess.kiln(["cache", "cat", "--cache", dir("cache"), archive.description])
        #expect(cat.status == 65, "\(cat)")
        #expect(cat.stdout.isEmpty, "a corrupt blob is never served")
        #expect(cat.stderr.contains("is corrupt") && cat.stderr.contains(path))

        let x = ChildProcess.kiln(["extract", "--cache", dir("cache"), archive.description, "-C", dir("out")])
        #expect(x.status == 65, "\(x)")
        #expect(!FileManager.default.fileExists(atPath: dir("out")), "a corrupt archive is never extracted")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".kiln") }.isEmpty)

        let verify = ChildProcess.kiln(["cache", "verify", "--cache", dir("cache")])
        #expect(verify.status == 65, "\(verify)")
        #expect(verify.stderr.contains("corrupt blob \(archive)"), "\(verify.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir("cache/quarantine/\(archive.hex)")))
        #expect(!store.contains(archive))
        #expect(store.contains(good))
        let again = ChildProcess.kiln(["cache", "verify", "--cache", dir("cache")])
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.contains("verified 1 blobs"), "\(again.stdout)")
        // The good archive can be stored again.
        #expect(try ArchiveWriter().store(source: dir("t"), in: store).digest == archive)
    }

    @Test func extractFromTheStoreVerifies() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir -p t/s && echo a > t/s/a", currentDirectory: dir.path).status == 0)
        let archived = ChildProcess.kiln(["archive", "--store", "--cache", dir("cache"), dir("t")])
        #expect(archived.status == 0, "\(archived)")
        let digest = String(archived.stdout.prefix(71))
        let x = ChildProcess.kiln(["extract", "--cache", dir("cache"), digest, "-C", dir("out")])
        #expect(x.status == 0, "\(x)")
        #expect((try? String(contentsOfFile: dir("out/s/a"), encoding: .utf8)) == "a\n")
    }

    @Test func staleTemporaryFilesAreCleanedAndLiveOnesKept() throws {
        let dir = ScratchDirectory()
        _ = try Store(root: dir("cache"))
        _ = FileManager.default.createFile(atPath: dir("cache/tmp/blob.999.dead"), contents: Data("partial".utf8))
        _ = FileManager.default.createFile(atPath: dir("cache/tmp/blob.1.live"), contents: Data("writing".utf8))
        let fd = open(dir("cache/tmp/blob.1.live"), O_RDONLY | O_CLOEXEC)  // no child of another test may inherit the lock
        #expect(flock(fd, LOCK_EX) == 0)
        // Another process opening the store cleans what nobody holds.
        let r = ChildProcess.kiln(["cache", "stats", "--cache", dir("cache")])
        #expect(r.status == 0, "\(r)")
        #expect(listFiles(dir("cache/tmp")) == ["blob.1.live"])
        close(fd)
        _ = try Store(root: dir("cache"))
        #expect(listFiles(dir("cache/tmp")).isEmpty)
    }

    /// 8 kiln processes storing overlapping content and reading it back at once lose and corrupt nothing.
    @Test func eightConcurrentProcesses() throws {
        let dir = ScratchDirectory()
        let setup = ChildProcess.shell(
            """
            set -e; mkdir shared tree
            for j in $(seq 1 20); do head -c $((j * 5000)) /dev/urandom > shared/s$j; done
            for i in 1 2 3 4 5 6 7 8; do mkdir u$i; for j in 1 2 3 4 5; do head -c 30000 /dev/urandom > u$i/f$j; done; done
            cp -r shared tree/
            """, currentDirectory: dir.path)
        try #require(setup.status == 0, "\(setup)")
        let kiln = ChildProcess.kilnPath
        let run = ChildProcess.shell(
            """
            K='\(kiln)'; C="$PWD/cache"
            worker() {
              i=$1
              "$K" cache put --cache "$C" shared/* u$i/* > put$i.txt || return 1
              "$K" archive --store --cache "$C" tree > arch$i.txt || return 2
              "$K" hash --cache "$C" tree > hash$i.txt || return 3
              for d in $(cut -d' ' -f1 put$i.txt | head -8); do "$K" cache cat --cache "$C" $d > /dev/null || return 4; done
            }
            pids=""
            for i in 1 2 3 4 5 6 7 8; do worker $i & pids="$pids $!"; done
            fail=0
            for p in $pids; do wait $p || fail=$((fail + 1)); done
            echo "failed=$fail"
            """, currentDirectory: dir.path)
        #expect(run.stdout.contains("failed=0"), "\(run)")
        var archives = Set<String>(), hashes = Set<String>()
        for i in 1...8 {
            archives.insert(try String(contentsOfFile: dir("arch\(i).txt"), encoding: .utf8).components(separatedBy: " ")[0])
            hashes.insert(try String(contentsOfFile: dir("hash\(i).txt"), encoding: .utf8))
            let put = try String(contentsOfFile: dir("put\(i).txt"), encoding: .utf8).split(separator: "\n")
            #expect(put.count == 25)
        }
        #expect(archives.count == 1, "every process made the same archive")
        #expect(hashes.count == 1)
        let blobs = listFiles(dir("cache/cas/sha256"))
        #expect(blobs.count == 20 + 8 * 5 + 1, "every blob stored exactly once: \(blobs.count)")
        #expect(listFiles(dir("cache/tmp")).isEmpty, "no temporary file left")
        let verify = ChildProcess.kiln(["cache", "verify", "--cache", dir("cache")])
        #expect(verify.status == 0, "\(verify)")
    }

    /// kill -9 at many moments during writes: never a partial blob; leftovers cleaned by the next process.
    @Test func killDuringWritesLeavesNoPartialEntry() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("head -c 48000000 /dev/urandom > big", currentDirectory: dir.path).status == 0)
        let run = ChildProcess.shell(
            """
            K='\(ChildProcess.kilnPath)'; C="$PWD/cache"
            left=0
            for delay in 0.005 0.01 0.02 0.03 0.04 0.05 0.06 0.08 0.1 0.12 0.15 0.2; do
              "$K" cache put --cache "$C" big > /dev/null 2>&1 &
              pid=$!
              sleep $delay
              kill -9 $pid 2>/dev/null
              wait $pid 2>/dev/null
              n=$(ls -A "$C/tmp" 2>/dev/null | wc -l)
              left=$((left + n))
              # Whatever is visible in cas/ must be whole.
              for f in $(find "$C/cas" -type f 2>/dev/null); do
                [ "$(sha256sum < "$f" | cut -c1-64)" = "$(basename "$f")" ] || echo "PARTIAL $f"
              done
            done
            echo "leftovers=$left"
            """, currentDirectory: dir.path)
        #expect(!run.stdout.contains("PARTIAL"), "\(run)")
        let leftovers = Int(run.stdout.components(separatedBy: "leftovers=").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        #expect(leftovers > 0, "some kill landed mid-write (else this test proves nothing): \(run.stdout)")
        let stats = ChildProcess.kiln(["cache", "stats", "--cache", dir("cache")])
        #expect(stats.status == 0)
        #expect(listFiles(dir("cache/tmp")).isEmpty, "the next process cleaned the leftovers")
        let verify = ChildProcess.kiln(["cache", "verify", "--cache", dir("cache")])
        #expect(verify.status == 0, "\(verify)")
        let put = ChildProcess.kiln(["cache", "put", "--cache", dir("cache"), dir("big")])
        #expect(put.status == 0, "\(put)")
    }

    /// A full disk (a 4 MiB tmpfs in a private mount namespace): clear error, store consistent.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root (CI runs as root)"))
    func fullDiskGivesAClearErrorAndAConsistentStore() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir mnt && head -c 8000000 /dev/urandom > big && echo small > small && echo other > other", currentDirectory: dir.path).status == 0)
        let r = ChildProcess.run(
            "/usr/bin/unshare",
            [
                "-m", "/bin/sh", "-c",
                """
                K='\(ChildProcess.kilnPath)'; C="$PWD/mnt/cache"
                mount -t tmpfs -o size=4m tmpfs mnt || { echo mount-failed; exit 0; }
                "$K" cache put --cache "$C" small > /dev/null; echo "small=$?"
                "$K" cache put --cache "$C" big 2> err.txt; echo "big=$?"
                echo "tmp=$(ls -A "$C/tmp" | wc -l)"
                echo "blobs=$(find "$C/cas" -type f | wc -l)"
                "$K" cache verify --cache "$C" > /dev/null; echo "verify=$?"
                "$K" cache put --cache "$C" other > /dev/null; echo "after=$?"
                """,
            ], currentDirectory: dir.path)
        try #require(!r.stdout.contains("mount-failed"), "could not mount a tmpfs: \(r)")
        #expect(r.stdout == "small=0\nbig=74\ntmp=0\nblobs=1\nverify=0\nafter=0\n", "\(r)")
        let err = (try? String(contentsOfFile: dir("err.txt"), encoding: .utf8)) ?? ""
        #expect(err.contains("no space left on device"), "\(err)")
        #expect(!err.contains("Fatal error"))
    }

    @Test func cacheLocationFollowsTheWorkspace() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir -p ws/recipes ws/a/b plain", currentDirectory: dir.path).status == 0)
        #expect(CacheLocation.resolve(option: "/x", environment: ["KILN_CACHE": "/y"], currentDirectory: dir("ws")) == CacheLocation(path: "/x", source: .option))
        #expect(CacheLocation.resolve(option: nil, environment: ["KILN_CACHE": "/y"], currentDirectory: dir("ws")) == CacheLocation(path: "/y", source: .environment))
        #expect(CacheLocation.resolve(option: nil, environment: [:], currentDirectory: dir("ws/a/b")) == CacheLocation(path: dir("ws/cache"), source: .workspace))
        #expect(CacheLocation.resolve(option: nil, environment: [:], currentDirectory: dir("plain")).path == dir("plain/cache"))
    }
}

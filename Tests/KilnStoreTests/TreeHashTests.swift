import Foundation
import KilnStore
import KilnTestSupport
import Testing

@Suite struct TreeHashTests {
    @Test func fileDigestMatchesSha256sum() throws {
        let dir = ScratchDirectory()
        let blob = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = FileManager.default.createFile(atPath: dir("f"), contents: Data(blob))
        let (d, kind) = try TreeHasher.digest(of: dir("f"))
        #expect(kind == .file)
        let sum = ChildProcess.run("/usr/bin/sha256sum", [dir("f")]).stdout.prefix(64)
        #expect(d.hex == String(sum))
    }

    /// The directory digest follows the encoding documented on `TreeHasher`, byte for byte.
    @Test func directoryDigestFollowsTheDocumentedEncoding() throws {
        let dir = ScratchDirectory()
        let r = ChildProcess.shell(
            """
            set -e; cd '\(dir.path)'; mkdir -p t/d t/e
            printf 'hello\\n' > t/a.txt; printf '#!/bin/sh\\n' > t/run; chmod 755 t/run
            ln -s a.txt t/l; printf 'x' > t/d/x
            """)
        #expect(r.status == 0, "\(r)")
        let hello = Digest.of(Array("hello\n".utf8)), run = Digest.of(Array("#!/bin/sh\n".utf8)), x = Digest.of(Array("x".utf8))
        let empty = Digest.of(Array("kiln-dir-v1\n".utf8))
        let sub = Digest.of(Array("kiln-dir-v1\nfile - 1 \(x)\0x\0".utf8))
        let listing = "kiln-dir-v1\n" + "file - 6 \(hello)\0a.txt\0" + "dir - 0 \(sub)\0d\0" + "dir - 0 \(empty)\0e\0"
            + "link - 5 a.txt\0l\0" + "file x 10 \(run)\0run\0"
        #expect(try TreeHasher.digest(of: dir("t")).digest == Digest.of(Array(listing.utf8)))
        #expect(try TreeHasher.digest(of: dir("t/e")).digest == empty)
    }

    @Test func directoryDigestIgnoresTimesModesOtherThanExecAndTheName() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("set -e; cd '\(dir.path)'; mkdir -p a/s; echo 1 > a/s/f; echo 2 > a/g; chmod 755 a/g").status == 0)
        let before = try TreeHasher.digest(of: dir("a")).digest
        #expect(ChildProcess.shell("set -e; cd '\(dir.path)'; touch -d 2001-01-01 a/s/f a/s a; chmod 600 a/s/f; chmod 700 a/g; mv a b").status == 0)
        #expect(try TreeHasher.digest(of: dir("b")).digest == before)
        #expect(ChildProcess.shell("chmod 644 '\(dir.path)/b/g'").status == 0)
        #expect(try TreeHasher.digest(of: dir("b")).digest != before, "the executable bit is part of the digest")
        #expect(ChildProcess.shell("chmod 755 '\(dir.path)/b/g'; echo 3 > '\(dir.path)/b/s/f'").status == 0)
        #expect(try TreeHasher.digest(of: dir("b")).digest != before, "content is part of the digest")
    }

    @Test func refusesSocketsAndFifos() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir '\(dir.path)/t' && mkfifo '\(dir.path)/t/pipe'").status == 0)
        let error = #expect(throws: StoreError.self) { try TreeHasher.digest(of: dir("t")) }
        #expect(error?.code == .unsupportedFileType)
        #expect(error?.message.contains("t/pipe is a fifo") == true, "\(error?.message ?? "")")
    }

    @Test func parallelHashingOfManyFilesMatchesSequential() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("cd '\(dir.path)' && mkdir t && for d in 1 2 3 4 5 6 7 8; do mkdir t/$d; for f in $(seq 1 60); do echo $d-$f > t/$d/$f; done; done").status == 0)
        let tree = try TreeHasher.digest(of: dir("t")).digest
        // Recompute by hand from per-directory digests.
        var top = "kiln-dir-v1\n"
        for d in ["1", "2", "3", "4", "5", "6", "7", "8"] {
            var sub = "kiln-dir-v1\n"
            for f in (1...60).map(String.init).sorted() {
                let content = "\(d)-\(f)\n"
                sub += "file - \(content.utf8.count) \(Digest.of(Array(content.utf8)))\0\(f)\0"
            }
            top += "dir - 0 \(Digest.of(Array(sub.utf8)))\0\(d)\0"
        }
        #expect(tree == Digest.of(Array(top.utf8)))
    }

    @Test func statCacheAnswersUnchangedFilesAndRehashesChangedOnes() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir '\(dir.path)/t' '\(dir.path)/tmp' && echo one > '\(dir.path)/t/f'").status == 0)
        usleep(50_000)  // older than the coarse clock's tick: not racily clean
        let cachePath = dir("statcache")
        let first = StatCache(path: cachePath)
        let d1 = try TreeHasher.digest(of: dir("t"), cache: first).digest
        #expect(first.learntCount == 1)
        try first.save(tmpDirectory: dir("tmp"))

        let second = StatCache(path: cachePath)
        #expect(try TreeHasher.digest(of: dir("t"), cache: second).digest == d1)
        #expect(second.learntCount == 0, "an unchanged file is answered by the cache")

        // Same size, mtime put back: the ctime still moves, so it is rehashed.
        #expect(ChildProcess.shell("cd '\(dir.path)/t' && m=$(stat -c %y f) && echo two > f && touch -d \"$m\" f").status == 0)
        let third = StatCache(path: cachePath)
        let d3 = try TreeHasher.digest(of: dir("t"), cache: third).digest
        #expect(d3 != d1)
    }

    /// git's racy-clean rule: a file written in the same tick as (or after) the cache was opened is
    /// not remembered, so a same-size rewrite within the timestamp granularity is still seen.
    @Test func racilyCleanFilesAreNotRemembered() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir '\(dir.path)/tmp'").status == 0)
        let cachePath = dir("statcache")
        let cache = StatCache(path: cachePath)
        _ = FileManager.default.createFile(atPath: dir("f"), contents: Data("aaaa".utf8))
        let d1 = try TreeHasher.digest(of: dir("f"), cache: cache).digest
        #expect(cache.learntCount == 0, "a file modified after the cache was opened is racily clean")
        try cache.save(tmpDirectory: dir("tmp"))
        // Rewrite with the same size and the same timestamps (as a fast writer within one tick would).
        #expect(ChildProcess.shell("cd '\(dir.path)' && m=$(stat -c %y f) && printf bbbb > f && touch -d \"$m\" f").status == 0)
        let again = StatCache(path: cachePath)
        let d2 = try TreeHasher.digest(of: dir("f"), cache: again).digest
        #expect(d2 == Digest.of(Array("bbbb".utf8)))
        #expect(d1 != d2)
    }

    @Test func kilnHashPrintsDigestsAndUsesTheCache() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("cd '\(dir.path)' && mkdir -p ws/recipes ws/t && echo hi > ws/t/f").status == 0)
        usleep(50_000)
        let r = ChildProcess.kiln(["hash", "t", "t/f"], currentDirectory: dir("ws"))
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[1] == "\(Digest.of(Array("hi\n".utf8)))  t/f")
        #expect(lines[0].hasSuffix("  t"))
        #expect(FileManager.default.fileExists(atPath: dir("ws/cache/statcache")), "the workspace's cache holds the stat cache")
        let missing = ChildProcess.kiln(["hash", "nope"], currentDirectory: dir("ws"))
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nope: ENOENT"), "\(missing.stderr)")
    }
}

import Foundation
import KilnStore
import KilnTestSupport
import Testing

/// Shell that creates the reference tree in "$1" (the variations below change how, never what).
let makeTree = """
    mk() {
      d="$1"; order="$2"; link="$3"
      mkdir -p "$d"
      long=$(printf 'n%.0s' $(seq 1 140))
      files() {
        printf 'hello\\n' > "$d/a.txt"
        printf '#!/bin/sh\\necho hi\\n' > "$d/tool.sh"; chmod 755 "$d/tool.sh"
        mkdir -p "$d/deep/er/est" "$d/empty"
        head -c 70000 /dev/zero | tr '\\0' 'z' > "$d/deep/er/est/big.bin"
        printf 'utf8\\n' > "$d/deep/é名.txt"
        printf 'long\\n' > "$d/deep/$long"
        if [ "$link" = hard ]; then ln "$d/a.txt" "$d/deep/copy.txt"; else cp "$d/a.txt" "$d/deep/copy.txt"; fi
        ln -s ../a.txt "$d/deep/link"
        ln -s deep/er "$d/dirlink"
      }
      if [ "$order" = reverse ]; then
        mkdir -p "$d/empty" "$d/deep/er/est"
        ln -s deep/er "$d/dirlink"; ln -s ../a.txt "$d/deep/link"
        printf 'long\\n' > "$d/deep/$long"; printf 'utf8\\n' > "$d/deep/é名.txt"
        head -c 70000 /dev/zero | tr '\\0' 'z' > "$d/deep/er/est/big.bin"
        printf '#!/bin/sh\\necho hi\\n' > "$d/tool.sh"; chmod 755 "$d/tool.sh"
        printf 'hello\\n' > "$d/a.txt"
        if [ "$link" = hard ]; then ln "$d/a.txt" "$d/deep/copy.txt"; else cp "$d/a.txt" "$d/deep/copy.txt"; fi
      else
        files
      fi
    }
    """

struct Variation: Sendable, CustomStringConvertible {
    var description: String
    var script: String  // run after makeTree's definition; creates the tree at ./v
}

let variations: [Variation] = [
    Variation(description: "touched", script: "mk v normal copy; sleep 0.01; find v -exec touch -h -d '2011-11-11 11:11:11.123' {} +; touch -a -d 2030-01-01 v/a.txt"),
    Variation(description: "chmod of group/other bits", script: "mk v normal copy; chmod 600 v/a.txt; chmod 700 v/tool.sh; chmod 711 v/deep; chmod 777 v/empty"),
    Variation(description: "umask 077", script: "umask 077; mk v normal copy"),
    Variation(description: "umask 000", script: "umask 000; mk v normal copy"),
    Variation(description: "reverse creation order", script: "mk v reverse copy"),
    Variation(description: "hardlink instead of copy", script: "mk v normal hard"),
    Variation(description: "another directory name", script: "mk other-name normal copy; mv other-name v"),
    Variation(description: "another owner", script: "mk v normal copy; chown -R -h 1234:5678 v 2>/dev/null || true"),
]

@Suite struct ArchiveTests {
    /// Archives (and hashes) the reference tree made plainly, in a fresh directory.
    static func reference(_ dir: ScratchDirectory) throws -> (bytes: Data, hash: String) {
        let made = ChildProcess.shell("set -e; \(makeTree)\n mk ref normal copy", currentDirectory: dir.path)
        #expect(made.status == 0, "\(made)")
        let r = ChildProcess.kiln(["archive", "ref", "-o", "ref.tar"], currentDirectory: dir.path)
        #expect(r.status == 0, "\(r)")
        let h = ChildProcess.kiln(["hash", "--no-stat-cache", "ref"], currentDirectory: dir.path)
        return (try Data(contentsOf: URL(fileURLWithPath: dir("ref.tar"))), String(h.stdout.prefix(71)))
    }

    @Test(arguments: variations)
    func sameContentGivesSameBytes(_ v: Variation) throws {
        let dir = ScratchDirectory()
        let ref = try Self.reference(dir)
        let made = ChildProcess.shell("set -e; \(makeTree)\n \(v.script)", currentDirectory: dir.path)
        #expect(made.status == 0, "\(made)")
        let r = ChildProcess.kiln(["archive", "v", "-o", "v.tar", "--digest"], currentDirectory: dir.path)
        #expect(r.status == 0, "\(r)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir("v.tar")))
        #expect(bytes == ref.bytes, "archive of the '\(v.description)' variation differs")
        #expect(r.stdout == "\(Digest.of(Array(bytes)))  v.tar\n")
        let h = ChildProcess.kiln(["hash", "--no-stat-cache", "v"], currentDirectory: dir.path)
        #expect(String(h.stdout.prefix(71)) == ref.hash, "directory digest of the '\(v.description)' variation differs")
    }

    @Test func normalisesHeaders() throws {
        let dir = ScratchDirectory()
        _ = try Self.reference(dir)
        let list = ChildProcess.run("/usr/bin/tar", ["--numeric-owner", "--full-time", "-tvf", dir("ref.tar")], environment: ["LC_ALL": "C.UTF-8", "TZ": "UTC"])
        #expect(list.status == 0 && list.stderr.isEmpty, "\(list)")
        let lines = list.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 12, "\(list.stdout)")
        for line in lines {
            #expect(line.contains(" 0/0 "), "uid/gid 0: \(line)")
            #expect(line.contains(" 1970-01-01 00:00:00 "), "mtime 0: \(line)")
        }
        let names = lines.map { line -> String in
            let afterTime = line.range(of: "00:00:00 ")!.upperBound
            return String(line[afterTime...])
        }
        let long = String(repeating: "n", count: 140)
        #expect(names == [
            "a.txt", "deep/", "deep/copy.txt", "deep/er/", "deep/er/est/", "deep/er/est/big.bin",
            "deep/link -> ../a.txt", "deep/\(long)", "deep/é名.txt", "dirlink -> deep/er", "empty/", "tool.sh",
        ], "canonical order: pre-order, siblings by name bytes, directories before their contents")
        #expect(lines[0].hasPrefix("-rw-r--r--"))
        #expect(lines.last!.hasPrefix("-rwxr-xr-x"))
        #expect(lines[1].hasPrefix("drwxr-xr-x"))
        #expect(lines.contains { $0.hasPrefix("drwxr-xr-x") && $0.hasSuffix(" empty/") }, "empty directories are kept")
        #expect(lines.contains { $0.hasPrefix("lrwxrwxrwx") && $0.hasSuffix(" dirlink -> deep/er") }, "symlinks stay symlinks")
        let raw = try Data(contentsOf: URL(fileURLWithPath: dir("ref.tar")))
        for word in ["atime", "ctime", "SCHILY", "LIBARCHIVE", "uname", "gname"] {
            #expect(raw.range(of: Data(word.utf8)) == nil, "no \(word) records")
        }
        #expect(raw.count % 512 == 0)
    }

    @Test func sourceDateEpochSetsTheMtime() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir '\(dir.path)/t' && echo x > '\(dir.path)/t/f'").status == 0)
        var env = ProcessInfo.processInfo.environment
        env["SOURCE_DATE_EPOCH"] = "1700000000"
        #expect(ChildProcess.kiln(["archive", dir("t"), "-o", dir("a.tar")], environment: env).status == 0)
        let list = ChildProcess.run("/usr/bin/tar", ["--full-time", "--utc", "-tvf", dir("a.tar")], environment: ["TZ": "UTC"])
        #expect(list.stdout.contains("2023-11-14 22:13:20"), "\(list)")
        env["SOURCE_DATE_EPOCH"] = "yesterday"
        let bad = ChildProcess.kiln(["archive", dir("t"), "-o", dir("b.tar")], environment: env)
        #expect(bad.status == 64 && bad.stderr.contains("SOURCE_DATE_EPOCH"), "\(bad)")
    }

    @Test(arguments: ["fifo", "socket", "chardev"])
    func refusesSpecialFiles(_ kind: String) throws {
        let dir = ScratchDirectory()
        let make: String
        switch kind {
        case "fifo": make = "mkfifo t/special"
        case "socket": make = "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.bind('t/special')\""
        default: make = "mknod t/special c 1 3"
        }
        let made = ChildProcess.shell("mkdir t && echo x > t/f && \(make)", currentDirectory: dir.path)
        try #require(made.status == 0, "could not make a \(kind): \(made)")
        let r = ChildProcess.kiln(["archive", "t", "-o", "t.tar"], currentDirectory: dir.path)
        #expect(r.status == 65, "\(r)")
        #expect(r.stderr.contains("t/special is a"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir("t.tar")), "no partial archive is left")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(leftovers.sorted() == ["t"])
    }

    @Test func hardlinksAreStoredAsFiles() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir t && echo same > t/a && ln t/a t/b", currentDirectory: dir.path).status == 0)
        #expect(ChildProcess.kiln(["archive", "t", "-o", "t.tar"], currentDirectory: dir.path).status == 0)
        let list = ChildProcess.run("/usr/bin/tar", ["-tvf", dir("t.tar")])
        #expect(!list.stdout.contains("link to"), "\(list.stdout)")
        #expect(list.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("-rw-r--r--") && $0.contains(" 5 ") })
    }

    /// GNU tar and bsdtar list and extract kiln's archives to the same tree; kiln extracts theirs.
    @Test(arguments: ["/usr/bin/tar", "/usr/bin/bsdtar"])
    func interoperatesWith(_ tool: String) throws {
        let dir = ScratchDirectory()
        let ref = try Self.reference(dir)
        let list = ChildProcess.run(tool, ["-tf", dir("ref.tar")])
        #expect(list.status == 0 && list.stderr.isEmpty, "\(list)")
        #expect(list.stdout.split(separator: "\n").count == 12)
        #expect(ChildProcess.shell("mkdir out && '\(tool)' -xf ref.tar -C out", currentDirectory: dir.path).status == 0)
        let theirs = ChildProcess.kiln(["hash", "--no-stat-cache", "out"], currentDirectory: dir.path)
        #expect(String(theirs.stdout.prefix(71)) == ref.hash, "\(tool) extracted a different tree")
        // And the other way: their archive, extracted by kiln.
        #expect(ChildProcess.shell("'\(tool)' -cf theirs.tar -C ref .", currentDirectory: dir.path).status == 0)
        let x = ChildProcess.kiln(["extract", "theirs.tar", "-C", "mine"], currentDirectory: dir.path)
        #expect(x.status == 0, "\(x)")
        let mine = ChildProcess.kiln(["hash", "--no-stat-cache", "mine"], currentDirectory: dir.path)
        #expect(String(mine.stdout.prefix(71)) == ref.hash, "kiln extracted \(tool)'s archive to a different tree")
        // Compressed too.
        #expect(ChildProcess.shell("'\(tool)' -czf theirs.tgz -C ref .", currentDirectory: dir.path).status == 0)
        #expect(ChildProcess.kiln(["extract", "theirs.tgz", "-C", "mine-gz"], currentDirectory: dir.path).status == 0)
    }

    @Test func roundTripThroughKilnExtract() throws {
        let dir = ScratchDirectory()
        let ref = try Self.reference(dir)
        let x = ChildProcess.kiln(["extract", "ref.tar", "-C", "out"], currentDirectory: dir.path)
        #expect(x.status == 0, "\(x)")
        let h = ChildProcess.kiln(["hash", "--no-stat-cache", "out"], currentDirectory: dir.path)
        #expect(String(h.stdout.prefix(71)) == ref.hash)
        let again = ChildProcess.kiln(["archive", "out", "-o", "again.tar"], currentDirectory: dir.path)
        #expect(again.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir("again.tar"))) == ref.bytes)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".kiln") }
        #expect(leftovers.isEmpty)
    }

    @Test func singleFileArchivesUnderItsBaseName() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("echo m > model.pkl && chmod 700 model.pkl", currentDirectory: dir.path).status == 0)
        #expect(ChildProcess.kiln(["archive", dir("model.pkl"), "-o", dir("m.tar")]).status == 0)
        let list = ChildProcess.run("/usr/bin/tar", ["-tvf", dir("m.tar")])
        #expect(list.stdout.hasPrefix("-rwxr-xr-x 0/0"), "\(list)")
        #expect(list.stdout.hasSuffix(" model.pkl\n"), "\(list)")
    }

    /// The archive format must never drift silently: this tree's archive has had this digest since
    /// the format was written down (changing it invalidates every cached artifact).
    @Test func goldenDigest() throws {
        let dir = ScratchDirectory()
        let made = ChildProcess.shell(
            "set -e; mkdir -p src/sub src/empty; echo hello > src/a.txt; printf '#!/bin/sh\\n' > src/sub/run.sh; chmod +x src/sub/run.sh; ln -s a.txt src/link",
            currentDirectory: dir.path)
        #expect(made.status == 0, "\(made)")
        let r = ChildProcess.kiln(["archive", "src", "-o", "a.tar", "--digest"], currentDirectory: dir.path)
        #expect(r.stdout == "sha256:7e3cf8e675cce6742e5db63d9a4d53d91937779d57d3283dee50bb634c4c9d72  a.tar\n", "\(r)")
        let h = ChildProcess.kiln(["hash", "--no-stat-cache", "src"], currentDirectory: dir.path)
        #expect(h.stdout == "sha256:cb539aef8b63a3e07b69dbfa05d3af9dac088f0bafee4a6dceb5319759b5ea99  src\n", "\(h)")
    }

    @Test func neverArchivesItsOwnOutput() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir t && echo x > t/x", currentDirectory: dir.path).status == 0)
        let first = ChildProcess.kiln(["archive", ".", "-o", "out.tar", "--digest"], currentDirectory: dir("t"))
        #expect(first.status == 0, "\(first)")
        // Again, with out.tar now present in the tree: still only x.
        let second = ChildProcess.kiln(["archive", ".", "-o", "out.tar", "--digest"], currentDirectory: dir("t"))
        #expect(second.status == 0, "\(second)")
        #expect(first.stdout == second.stdout)
        let list = ChildProcess.run("/usr/bin/tar", ["-tf", dir("t/out.tar")])
        #expect(list.stdout == "x\n", "\(list)")
    }

    @Test func badOutputsAreExplained() throws {
        let dir = ScratchDirectory()
        #expect(ChildProcess.shell("mkdir t && echo x > t/x", currentDirectory: dir.path).status == 0)
        let noDir = ChildProcess.kiln(["archive", "t", "-o", "missing/out.tar"], currentDirectory: dir.path)
        #expect(noDir.status == 64 && noDir.stderr.contains("the directory missing does not exist"), "\(noDir)")
        let isDir = ChildProcess.kiln(["archive", "t", "-o", "t"], currentDirectory: dir.path)
        #expect(isDir.status == 64 && isDir.stderr.contains("it is a directory"), "\(isDir)")
        let noSource = ChildProcess.kiln(["archive", "nope", "-o", "out.tar"], currentDirectory: dir.path)
        #expect(noSource.status == 74 && noSource.stderr.contains("nope: ENOENT"), "\(noSource)")
        let noWhere = ChildProcess.kiln(["archive", "t"], currentDirectory: dir.path)
        #expect(noWhere.status == 64 && noWhere.stderr.contains("-o FILE.tar"), "\(noWhere)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["t"], "nothing left behind")
    }
}

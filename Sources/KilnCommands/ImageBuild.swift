import ArgumentParser
import KilnImage
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln.Image {
    /// `kiln image build --name NAME --from debian:bookworm --packages a,b`
    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "build",
            abstract: "Build a Debian image with mmdebstrap and import it; prints its reference.",
            discussion: """
                Runs `mmdebstrap --variant=minbase --include=PACKAGES SUITE OUT.tar [MIRROR]` into the \
                cache's tmp/ (its progress on standard error), then imports the result as `kiln image \
                import` does. The digest pins what was built: building again later gives a new digest \
                whenever the mirror's packages changed. Needs mmdebstrap (apt-get install mmdebstrap) and \
                the mirror; run as root, or where unprivileged user namespaces work.
                """)

        @OptionGroup(title: "Cache") var cacheOptions: CacheOptions

        @Option(name: .customLong("name"), help: ArgumentHelp("The image's name.", valueName: "name"))
        var name: String

        @Option(name: .customLong("from"), help: ArgumentHelp("The base: debian:SUITE, like debian:bookworm.", valueName: "base"))
        var from: String = "debian:bookworm"

        @Option(name: .customLong("packages"), help: ArgumentHelp("Packages to install, comma-separated.", valueName: "a,b,…"))
        var packages: String = ""

        @Option(name: .customLong("mirror"), help: ArgumentHelp("The Debian mirror (default: mmdebstrap's, deb.debian.org).", valueName: "url"))
        var mirror: String?

        @Flag(name: .customLong("json"), help: "Print the image as JSON.")
        var json = false

        var suite: String? {
            guard from.hasPrefix("debian:") else { return nil }
            let suite = String(from.dropFirst(7))
            return suite.isEmpty || suite.contains("/") ? nil : suite
        }

        var packageList: [String] { packages.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } }

        func validate() throws {
            do throws(StoreError) { try ImageStore.checkName(name) } catch { throw ValidationError("'--name \(name)': \(error.message)") }
            if suite == nil { throw ValidationError("'--from \(from)' is not debian:SUITE; write it like --from debian:bookworm.") }
            for p in packageList where !p.allSatisfy({ $0.isLetter || $0.isNumber || "+-.:=~".contains($0) }) {
                throw ValidationError("'--packages': '\(p)' is not a Debian package name.")
            }
        }

        func run() async throws {
            try storeMain {
                let images = try imageStore(cacheOptions)
                let image = try DebianImageBuilder.build(images, name: name, suite: suite!, packages: packageList, mirror: mirror)
                if json { printJSONLine(ImageJSON(image, store: images.store)) } else { storeOutputLine(image.reference) }
            }
        }
    }
}

/// `mmdebstrap` into the cache's tmp/, then import: for `kiln image build` and `kiln image lock`.
enum DebianImageBuilder {
    static func build(_ images: ImageStore, name: String, suite: String, packages: [String], mirror: String?) throws(StoreError) -> ResolvedImage {
        guard let tool = ProcessRunner.find("mmdebstrap") else {
            throw StoreError(.notFound, "mmdebstrap is not installed: install it with `apt-get install mmdebstrap`, then build again.")
        }
        let staging = try images.store.makeStagingDirectory(prefix: "image-build")
        defer { staging.remove() }
        let output = staging.path + "/rootfs.tar"
        var argv = [tool, "--variant=minbase", "--format=tar"]
        if !packages.isEmpty { argv.append("--include=" + packages.joined(separator: ",")) }
        argv += [suite, output]
        if let mirror { argv.append(mirror) }
        storeErrorLine("kiln: building debian:\(suite)\(packages.isEmpty ? "" : " with \(packages.joined(separator: ", "))"): \(argv.joined(separator: " "))")
        let (status, tail) = ProcessRunner.run(argv, environment: ["SOURCE_DATE_EPOCH": "0"]) { line in storeErrorLine("  \(line)") }
        guard status == 0 else {
            throw StoreError(.notFound, "mmdebstrap failed (exit status \(status)): \(BuildFailure.explain(tail, packages: packages, mirror: mirror))")
        }
        let description = "mmdebstrap debian:\(suite)" + (packages.isEmpty ? "" : " +" + packages.joined(separator: ","))
        return try images.importImage(from: output, name: name, createdFrom: "mmdebstrap", describedAs: description) { line in storeErrorLine("kiln: \(line)") }
    }
}

/// Turns mmdebstrap's last lines into what went wrong.
enum BuildFailure {
    static func explain(_ lines: [String], packages: [String], mirror: String?) -> String {
        for line in lines {
            if let range = line.firstRange(of: "Unable to locate package ") {
                let package = line[range.upperBound...].trimmingSpaces()
                return "the package '\(package)' does not exist in the suite. Check its name (apt-cache search \(package)) and --from."
            }
            if line.contains("has no installation candidate") || line.contains("Depends:") && line.contains("but it is not") {
                return "a package cannot be installed: \(line.trimmingSpaces()). Check --packages."
            }
            if line.contains("Could not resolve") || line.contains("Temporary failure resolving") || line.contains("Failed to fetch") || line.contains("Connection failed") || line.contains("Unable to connect") {
                return "the mirror \(mirror ?? "deb.debian.org") cannot be reached: \(line.trimmingSpaces()). Check the network or give a reachable mirror with --mirror URL."
            }
        }
        let last = lines.suffix(5).joined(separator: " | ")
        return last.isEmpty ? "it printed nothing; run it by hand to see why." : "its last lines: \(last)"
    }
}

/// Runs a helper program (posix_spawn; no Foundation), passing its stderr and stdout on line by line.
enum ProcessRunner {
    static func find(_ program: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        for dir in (path + ":/usr/sbin:/sbin").split(separator: ":") {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Returns the exit status (128+N for a signal) and the last 40 lines it printed.
    static func run(_ argv: [String], environment: [String: String], line: (String) -> Void) -> (Int32, [String]) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return (127, ["pipe failed: errno \(errno)"]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var env: [String] = []
        var i = 0
        while let entry = environ[i] { env.append(String(cString: entry)); i += 1 }
        env = env.filter { e in !environment.keys.contains { e.hasPrefix($0 + "=") } } + environment.map { "\($0.key)=\($0.value)" }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { (cArgv + cEnv).forEach { free($0) } }
        // An empty signal mask and default dispositions: kiln's threads block some signals, and
        // a child inheriting that (apt, dpkg) could hang waiting for SIGCHLD.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return (127, ["cannot start \(argv[0]): errno \(rc)"])
        }
        var tail: [String] = []
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buffer[0..<n]
            while let nl = pending.firstIndex(where: { $0 == 10 || $0 == 13 }) {
                let text = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                if text.isEmpty { continue }
                line(text)
                tail.append(text)
                if tail.count > 40 { tail.removeFirst() }
            }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, tail)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

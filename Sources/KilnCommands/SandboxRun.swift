import ArgumentParser
import FoundationEssentials
import KilnImage
import KilnSandbox
import KilnStore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Kiln.Sandbox {
    /// `kiln sandbox run [OPTIONS] -- COMMAND [ARG...]`
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",  // Spelled out: deriving it from the type name is slow at start-up.
            // Used only when `run` is parsed on its own (Kiln.entrypoint's fast path): usage then
            // reads `kiln sandbox run`, and ArgumentParser skips its completion-script check,
            // which parses the arguments twice more (10 % of the command's start-up).
            _superCommandName: "kiln sandbox",
            abstract: "Run a command in a hermetic sandbox.",
            discussion: """
                The command runs in new user, mount, pid, network, uts, ipc and cgroup namespaces, on a \
                read-only tmpfs root that holds only: the host's toolchain (/usr and the /bin /lib /lib64 \
                /sbin links) read-only, a generated /etc, a fresh /proc, a minimal /dev, a /tmp tmpfs, and \
                what you mount. With --image, the image's root filesystem (read-only) replaces the host's \
                toolchain; kiln's passwd, group, hosts, hostname and nsswitch.conf cover the image's. It runs as uid/gid \(SandboxSpec.sandboxUID) (\(SandboxSpec.sandboxUser)) with \
                hostname \(SandboxSpec.defaultHostname), no capabilities, no_new_privs, a seccomp filter \
                (\(SeccompProfile.version)), loopback-only networking and a cleared environment: \
                PATH=\(SandboxSpec.defaultPath) HOME=\(SandboxSpec.home) LANG=LC_ALL=C.UTF-8 TZ=UTC \
                SOURCE_DATE_EPOCH=0 PYTHONHASHSEED=0, plus --env.

                Examples:
                  kiln sandbox run -- python3 -c 'print("hello")'
                  kiln sandbox run --ro-bind data /work/data --bind out /work/out --cwd /work \\
                      --memory 2G --cpus 2 --timeout 10m -- python3 train.py
                """
        )

        @Option(name: .customLong("ro-bind"), parsing: .upToNextOption,
                help: ArgumentHelp("Mount host path SRC read-only at DST (repeatable).", valueName: "SRC DST"))
        var readOnlyBinds: [String] = []

        @Option(name: .customLong("bind"), parsing: .upToNextOption,
                help: ArgumentHelp("Mount host path SRC writable at DST (repeatable).", valueName: "SRC DST"))
        var binds: [String] = []

        @Option(name: .customLong("tmpfs"),
                help: ArgumentHelp("An empty tmpfs at DST, optionally limited to SIZE (repeatable; /tmp:SIZE resizes /tmp).", valueName: "DST[:SIZE]"))
        var tmpfs: [String] = []

        @Option(name: .customLong("env"), help: ArgumentHelp("Set a variable in the command's environment (repeatable).", valueName: "KEY=VALUE"))
        var environment: [String] = []

        @Option(name: .customLong("cwd"), help: ArgumentHelp("The working directory inside the sandbox (default: the image's WorkingDir, else /).", valueName: "DIR"))
        var workingDirectory: String?

        @Option(name: .customLong("image"), help: ArgumentHelp("Run on this image's root filesystem instead of the host's toolchain: NAME@sha256:HEX, sha256:HEX, or a NAME in the cache (kiln image ls). Its Env comes before --env.", valueName: "REF"))
        var image: String?

        @Option(name: .customLong("cache"), help: ArgumentHelp("The cache holding --image (default: $KILN_CACHE, else cache/ of the workspace, else ./cache).", valueName: "dir"))
        var cache: String?

        @Option(help: "The sandbox's hostname.")
        var hostname: String = SandboxSpec.defaultHostname

        @Option(help: "none: loopback only (the default). host: the host's network, which weakens the sandbox.")
        var network: SandboxSpec.Network = .none

        @Option(help: ArgumentHelp("Memory limit for the whole tree, like 512M or 2G.", valueName: "SIZE"))
        var memory: String?

        @Option(help: ArgumentHelp("Limit processes and threads to exactly N (the pids cgroup). Without it, a ceiling of \(SandboxSpec.Limits.defaultPidCeiling) process ids still stops fork bombs.", valueName: "N"))
        var pids: Int?

        @Option(help: ArgumentHelp("Pin the command to N CPUs and set OMP/OPENBLAS/MKL_NUM_THREADS=N.", valueName: "N"))
        var cpus: Int?

        @Option(help: ArgumentHelp("Kill the whole tree after DURATION, like 30s or 10m (exit code 124).", valueName: "DURATION"))
        var timeout: String?

        @Flag(help: "Print the result (exit status, times, peak memory, limits) as JSON on stdout after the run.")
        var json = false

        @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run and its arguments, after --.", valueName: "COMMAND"))
        var command: [String] = []

        func validate() throws {
            if readOnlyBinds.count % 2 != 0 {
                throw ValidationError("'--ro-bind' takes two values, SRC and DST, like --ro-bind data /work/data.")
            }
            if binds.count % 2 != 0 {
                throw ValidationError("'--bind' takes two values, SRC and DST, like --bind out /work/out.")
            }
            for target in stride(from: 1, to: readOnlyBinds.count, by: 2).map({ readOnlyBinds[$0] }) + stride(from: 1, to: binds.count, by: 2).map({ binds[$0] })
            where !target.hasPrefix("/") {
                throw ValidationError("The mount target '\(target)' must be an absolute path inside the sandbox, like /work/data.")
            }
            for entry in environment where !entry.contains("=") || entry.hasPrefix("=") {
                throw ValidationError("'--env \(entry)' must be KEY=VALUE, like --env SEED=1.")
            }
            if let memory, Units.bytes(memory) == nil {
                throw ValidationError("'--memory \(memory)' is not a size: write it like 512M or 2G.")
            }
            if let timeout, Units.seconds(timeout) == nil {
                throw ValidationError("'--timeout \(timeout)' is not a duration: write it like 30s, 10m or 1h.")
            }
            for entry in tmpfs {
                let parts = entry.split(separator: ":", maxSplits: 1)
                if parts.count == 2, Units.bytes(String(parts[1])) == nil {
                    throw ValidationError("'--tmpfs \(entry)': '\(parts[1])' is not a size: write it like /scratch:512M.")
                }
            }
            if let pids, pids < 1 { throw ValidationError("'--pids' must be at least 1.") }
            if let cpus, cpus < 1 { throw ValidationError("'--cpus' must be at least 1.") }
            if command.isEmpty {
                throw ValidationError("Say what to run after --, like: kiln sandbox run -- python3 -c 'print(1)'")
            }
        }

        var spec: SandboxSpec {
            var mounts: [SandboxSpec.Mount] = BindArguments.lifted
            for i in stride(from: 0, to: readOnlyBinds.count - 1, by: 2) {
                mounts.append(.bind(source: readOnlyBinds[i], target: readOnlyBinds[i + 1], readOnly: true))
            }
            for i in stride(from: 0, to: binds.count - 1, by: 2) {
                mounts.append(.bind(source: binds[i], target: binds[i + 1], readOnly: false))
            }
            for entry in tmpfs {
                let parts = entry.split(separator: ":", maxSplits: 1)
                mounts.append(.tmpfs(target: String(parts[0]), size: parts.count == 2 ? Units.bytes(String(parts[1])) : nil))
            }
            var env: [String: String] = [:]
            for entry in environment {
                let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                env[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
            }
            let argv = command
            return SandboxSpec(
                command: argv, mounts: mounts, environment: env, workingDirectory: workingDirectory ?? "/",
                hostname: hostname, network: network,
                limits: .init(memory: memory.flatMap(Units.bytes), pids: pids, cpus: cpus, timeout: timeout.flatMap(Units.seconds)))
        }

        /// `spec` on `--image`'s root, with the image's Env under `--env` and its WorkingDir as
        /// the default `--cwd`.
        func imageSpec(_ reference: String) throws -> SandboxSpec {
            var spec = self.spec
            do throws(StoreError) {
                let location = CacheLocation.resolve(option: cache).path
                guard let store = try Store.existing(root: location) else {
                    throw StoreError(.notFound, "there is no cache at \(location), so no image \(reference): give --cache DIR or set KILN_CACHE, or import it with `kiln image import SOURCE --name NAME`.")
                }
                let images = ImageStore(store: store)
                let resolved = try images.resolve(reference)
                // Held until this process exits (it ends with the sandbox): rm and gc leave the tree.
                let use = try images.use(resolved)
                ImageUseHold.current = use
                spec.root = .image(path: use.path)
                if let record = resolved.record {
                    spec.environment = record.environment.merging(spec.environment) { _, mine in mine }
                    if workingDirectory == nil, let dir = record.workingDir { spec.workingDirectory = dir }
                }
            } catch {
                printError("kiln: \(error.message)")
                let code = storeExitCode(for: error)
                if json { try? printJSON(SandboxRunFailure(imageError: error, kilnExitCode: code)) }
                throw ExitCode(code)
            }
            return spec
        }

        /// Synchronous on purpose: the calling thread supervises the sandbox, so a run needs no
        /// other thread (and `kiln sandbox run` starts without the concurrency runtime).
        func run() throws {
            let result: SandboxResult
            do {
                // Ctrl-C and friends go to the sandbox (its command has its own session, so the
                // terminal does not signal it directly); kiln itself waits for the result.
                let spec = try image.map(imageSpec) ?? self.spec
                result = try Sandbox.runOnCurrentThread(spec, forwardingSignals: [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
            } catch let error as SandboxError {
                throw report(error)
            }
            if json {
                try printJSON(result)
            } else if result.timedOut {
                printError("kiln: the command timed out after \(timeout ?? "?") and was killed with its whole process tree")
            } else if result.memoryLimitExceeded && result.exitStatus != 0 {
                printError("kiln: the command exceeded its memory limit (\(memory ?? "?")) and was killed")
            }
            throw ExitCode(result.exitCode)
        }

        private func report(_ error: SandboxError) -> ExitCode {
            printError("kiln: \(error.message)")
            let code: Int32
            switch error.code {
            case .commandNotFound: code = KilnExitCode.commandNotFound
            case .commandNotExecutable: code = KilnExitCode.commandNotExecutable
            case .invalidSpec: code = KilnExitCode.usage
            case .setupFailed, .userNamespacesUnavailable: code = KilnExitCode.sandboxSetupFailed
            }
            // A machine reading --json gets the failure as JSON too, not only a sentence on stderr.
            if json { try? printJSON(SandboxRunFailure(error: error, kilnExitCode: code)) }
            return ExitCode(code)
        }

        private func printJSON(_ result: SandboxResult) throws {
            try printJSON(SandboxRunReport(result: result, network: network))
        }

        private func printJSON(_ value: some Encodable) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var data = try encoder.encode(value)
            data.append(UInt8(ascii: "\n"))
            data.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
        }
    }
}

/// `--json` when the sandbox could not run the command: `{"error": {code, message, step, errno}, "kilnExitCode"}`.
struct SandboxRunFailure: Encodable {
    struct Detail: Encodable {
        var code: String
        var message: String
        var step: String?
        var errno: Int32?
    }
    var error: Detail
    var kilnExitCode: Int32

    /// `--image` could not be found or extracted (code `image.<store error code>`).
    init(imageError: StoreError, kilnExitCode: Int32) {
        self.error = Detail(code: "image." + imageError.code.rawValue, message: imageError.message, step: nil, errno: imageError.errno?.rawValue)
        self.kilnExitCode = kilnExitCode
    }

    init(error: SandboxError, kilnExitCode: Int32) {
        self.error = Detail(code: error.code.rawValue, message: error.message, step: error.step, errno: error.errno?.rawValue)
        self.kilnExitCode = kilnExitCode
    }
}

/// ArgumentParser has no option that takes two values, and parses long runs of repeated options
/// in quadratic time (1,000 binds took 250 ms). So the entry point lifts `--bind SRC DST` and
/// `--ro-bind SRC DST` pairs out of `kiln sandbox run`'s arguments before parsing, keeping their
/// order and checking each pair; the @Option declarations remain for --help.
enum BindArguments {
    nonisolated(unsafe) static var lifted: [SandboxSpec.Mount] = []

    /// Returns the arguments without the bind pairs, which go to `lifted`.
    static func lift(_ arguments: [String]) throws(ValidationError) -> [String] {
        var rest: [String] = []
        rest.reserveCapacity(arguments.count)
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                rest += arguments[i...]
                break
            }
            guard argument == "--bind" || argument == "--ro-bind" else {
                rest.append(argument)
                i += 1
                continue
            }
            let example = argument == "--bind" ? "--bind out /work/out" : "--ro-bind data /work/data"
            guard i + 2 < arguments.count, !arguments[i + 1].hasPrefix("--"), !arguments[i + 2].hasPrefix("--") else {
                throw ValidationError("'\(argument)' takes two values, SRC and DST, like \(example).")
            }
            let target = arguments[i + 2]
            guard target.hasPrefix("/") else {
                throw ValidationError("The mount target '\(target)' must be an absolute path inside the sandbox, like \(example).")
            }
            lifted.append(.bind(source: arguments[i + 1], target: target, readOnly: argument == "--ro-bind"))
            i += 3
        }
        return rest
    }
}

/// `--json`: the result plus kiln's exit code, the profile it ran under and the network it had
/// (`host` weakens the sandbox, so it is always stated).
struct SandboxRunReport: Encodable {
    var result: SandboxResult
    var network: SandboxSpec.Network
    func encode(to encoder: any Encoder) throws {
        try result.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(result.exitCode, forKey: .kilnExitCode)
        try container.encode(SeccompProfile.version, forKey: .seccompProfile)
        try container.encode(network, forKey: .network)
    }
    enum Keys: String, CodingKey { case kilnExitCode, seccompProfile, network }
}

extension SandboxSpec.Network: ExpressibleByArgument {}

func printError(_ message: String) {
    var line = message
    line.append("\n")
    line.utf8CString.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count - 1) }
}

/// The image tree `kiln sandbox run --image` holds while its sandbox runs (see `Store.useImageRoot`).
enum ImageUseHold {
    nonisolated(unsafe) static var current: ImageRootUse?
}

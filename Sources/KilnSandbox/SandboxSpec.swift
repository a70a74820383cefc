import SystemPackage

/// What a sandbox runs and what it may see. Everything not declared here is absent inside.
public struct SandboxSpec: Sendable {
    /// A file system entry the sandbox sees beyond the defaults (toolchain, /proc, /dev, /etc, /tmp).
    public enum Mount: Sendable, Hashable {
        /// A host path at `target`; writes go through to the host unless `readOnly`.
        case bind(source: String, target: String, readOnly: Bool)
        /// An empty tmpfs at `target`, limited to `size` bytes (nil: the default for /tmp).
        case tmpfs(target: String, size: UInt64?)

        public var target: String {
            switch self {
            case .bind(_, let target, _), .tmpfs(let target, _): return target
            }
        }
    }

    public enum Network: String, Sendable, Codable, CaseIterable {
        /// A private network namespace with only loopback up: no route out, and no reach to the
        /// host's loopback or abstract unix sockets.
        case none
        /// The host's network. This weakens the sandbox and is recorded wherever it is used.
        case host
    }

    /// Resource limits. Memory and pids use cgroups where kiln may create them (v2, or the v1
    /// controllers), and rlimits otherwise; the result says which.
    public struct Limits: Sendable, Equatable {
        /// Bytes of memory (the cgroup's limit, which counts tmpfs pages too). Nil: unlimited.
        public var memory: UInt64?
        /// Processes and threads, exactly (the pids cgroup, else RLIMIT_NPROC). Nil: no exact limit.
        public var pids: Int?
        /// When `pids` is nil: a ceiling on the process ids of the sandbox's pid namespace (its own
        /// `pid_max`, Linux 6.14 and later), which stops fork bombs at no cost; older kernels get
        /// the same number as a pids limit. Nil: none.
        public var pidCeiling: Int?
        /// Pins the command to this many CPUs and sets OMP/OPENBLAS/MKL_NUM_THREADS to match.
        public var cpus: Int?
        /// Wall-clock limit in seconds; the whole process tree is killed when it expires.
        public var timeout: Double?
        /// Pins the command to these CPUs: indices into the CPUs kiln itself may run on (its
        /// affinity), taken modulo their count. It leaves the environment alone (unlike `cpus`):
        /// the engine uses it to give parallel stages different cores.
        public var cpuSet: [Int]?

        public static let defaultPidCeiling = 4096

        public init(memory: UInt64? = nil, pids: Int? = nil, pidCeiling: Int? = Limits.defaultPidCeiling, cpus: Int? = nil, timeout: Double? = nil) {
            self.memory = memory
            self.pids = pids
            self.pidCeiling = pidCeiling
            self.cpus = cpus
            self.timeout = timeout
        }

        public init(memory: UInt64? = nil, cpuSet: [Int], timeout: Double? = nil) {
            self.init(memory: memory, timeout: timeout)
            self.cpuSet = cpuSet
        }
    }

    /// Where a standard stream of the command goes.
    public enum IO: Sendable {
        /// The caller's own stdin/stdout/stderr.
        case inherit
        /// A descriptor the caller owns (a pipe, a log file); it stays open in the caller.
        case fileDescriptor(FileDescriptor)
    }

    /// The command: argv[0] is looked up in the sandbox's PATH when it has no slash.
    public var command: [String]
    public var mounts: [Mount]
    /// Variables added to (and overriding) `SandboxSpec.defaultEnvironment`.
    public var environment: [String: String]
    public var workingDirectory: String
    public var hostname: String
    public var network: Network
    public var limits: Limits
    /// What the sandbox's `/` holds besides what kiln always builds (/etc's generated files,
    /// /proc, /dev, /tmp) and what `mounts` declares.
    public enum Root: Sendable, Hashable {
        /// The host's /usr, the /bin /lib /lib64 /sbin links or directories, and the few /etc
        /// files programs need to start, all read-only.
        case hostToolchain
        /// An extracted image tree (a host directory): each of its top-level entries except
        /// proc, dev, sys, tmp and work appears read-only at `/NAME`, its /etc included, with
        /// kiln's generated passwd, group, hosts, hostname and nsswitch.conf bound over the
        /// image's. Nothing of the host's /usr is visible.
        case image(path: String)
        /// Only what `mounts` declares.
        case empty
    }

    public var root: Root
    /// Whether `root` is the host toolchain (setting false leaves an empty root).
    public var hostToolchain: Bool {
        get { root == .hostToolchain }
        set { root = newValue ? .hostToolchain : .empty }
    }
    /// The size of the default /tmp tmpfs (a `.tmpfs` mount at /tmp replaces it).
    public var tmpSize: UInt64
    public var stdin: IO
    public var stdout: IO
    public var stderr: IO
    /// Seconds between SIGTERM and SIGKILL when the timeout expires.
    public var killGracePeriod: Double

    public static let defaultTmpSize: UInt64 = 1 << 30
    /// The uid and gid the command runs as, and their name.
    public static let sandboxUID: UInt32 = 1000
    public static let sandboxUser = "kiln"
    public static let defaultHostname = "kiln"
    public static let defaultPath = "/usr/local/bin:/usr/bin:/bin"
    public static let home = "/tmp/home"

    public init(
        command: [String],
        mounts: [Mount] = [],
        environment: [String: String] = [:],
        workingDirectory: String = "/",
        hostname: String = SandboxSpec.defaultHostname,
        network: Network = .none,
        limits: Limits = Limits(),
        hostToolchain: Bool = true,
        root: Root? = nil,
        tmpSize: UInt64 = SandboxSpec.defaultTmpSize,
        stdin: IO = .inherit,
        stdout: IO = .inherit,
        stderr: IO = .inherit,
        killGracePeriod: Double = 2
    ) {
        self.command = command
        self.mounts = mounts
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.hostname = hostname
        self.network = network
        self.limits = limits
        self.root = root ?? (hostToolchain ? .hostToolchain : .empty)
        self.tmpSize = tmpSize
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.killGracePeriod = killGracePeriod
    }

    /// The environment every sandbox starts from (DESIGN.md, "Defaults every stage gets"):
    /// nothing of the caller's leaks in.
    public static func defaultEnvironment(cpus: Int?) -> [String: String] {
        var env = [
            "PATH": defaultPath,
            "HOME": home,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "SOURCE_DATE_EPOCH": "0",
            "PYTHONHASHSEED": "0",
            "USER": sandboxUser,
            "LOGNAME": sandboxUser,
        ]
        if let cpus {
            for name in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
                env[name] = String(cpus)
            }
        }
        return env
    }

    /// The environment the command gets: the defaults, then `environment` on top.
    public var effectiveEnvironment: [String: String] {
        SandboxSpec.defaultEnvironment(cpus: limits.cpus).merging(environment) { _, mine in mine }
    }
}

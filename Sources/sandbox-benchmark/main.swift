// Measures kiln's sandbox side by side with bubblewrap doing the same work, interleaved round by
// round (so a change in machine load hits all three alike):
//   - `kiln sandbox run … -- /bin/true` as a whole process,
//   - `Sandbox.run` of /bin/true inside this process, as the pipeline engine spawns stages,
//   - `bwrap --unshare-all --die-with-parent … /bin/true` as a whole process.
// Usage: sandbox-benchmark KILN RUNS BINDS
// Prints one line of key=value pairs: medians and quartiles in milliseconds, and ratios.
import KilnSandbox
#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
}

/// Runs a program to completion with its output discarded; returns milliseconds.
func timeProcess(_ argv: [String]) -> Double {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    let cArguments = argv.map { strdup($0) } + [nil]
    defer { cArguments.forEach { free($0) } }
    var pid: pid_t = 0
    let start = now()
    guard posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ) == 0 else {
        fatalError("cannot start \(argv[0])")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let elapsed = now() - start
    precondition(status == 0, "\(argv[0]) failed with status \(status)")
    return elapsed
}

func timeAPI(_ spec: SandboxSpec) async -> Double {
    let start = now()
    do {
        let result = try await Sandbox.run(spec)
        precondition(result.exitStatus == 0, "the sandboxed command failed: \(result.summary)")
    } catch {
        fatalError("Sandbox.run failed: \(error)")
    }
    return now() - start
}

func quartiles(_ samples: [Double]) -> (p25: Double, median: Double, p75: Double) {
    let sorted = samples.sorted()
    return (sorted[sorted.count / 4], sorted[sorted.count / 2], sorted[sorted.count * 3 / 4])
}

func format(_ value: Double) -> String {
    String((value * 1000).rounded() / 1000)
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let runs = Int(arguments[2]), let binds = Int(arguments[3]), runs > 0 else {
    print("usage: sandbox-benchmark KILN RUNS BINDS")
    exit(2)
}
let kiln = arguments[1]
let source = "/tmp/kiln-benchmark-bind-source"
mkdir(source, 0o755)
let targets = (0..<binds).map { "/work/d\($0)" }

let bwrap = ["/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
             "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin", "--symlink", "usr/lib", "/lib",
             "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    + targets.flatMap { ["--ro-bind", source, $0] } + ["/bin/true"]
let kilnCommand = [kiln, "sandbox", "run"] + targets.flatMap { ["--ro-bind", source, $0] } + ["--", "/bin/true"]
let spec = SandboxSpec(command: ["/bin/true"], mounts: targets.map { .bind(source: source, target: $0, readOnly: true) })

// Warm-up: page caches, the seccomp filter, cgroup discovery.
_ = timeProcess(bwrap)
_ = timeProcess(kilnCommand)
_ = await timeAPI(spec)

var samples: [String: [Double]] = ["bwrap": [], "kiln": [], "api": []]
for round in 0..<runs {
    // Rotate the order so none of the three always runs first after a pause.
    for slot in 0..<3 {
        switch (round + slot) % 3 {
        case 0: samples["bwrap"]!.append(timeProcess(bwrap))
        case 1: samples["kiln"]!.append(timeProcess(kilnCommand))
        default: samples["api"]!.append(await timeAPI(spec))
        }
    }
}
let b = quartiles(samples["bwrap"]!)
let k = quartiles(samples["kiln"]!)
let a = quartiles(samples["api"]!)
print("binds=\(binds) runs=\(runs)",
      "bwrap_median_ms=\(format(b.median)) bwrap_p25_ms=\(format(b.p25)) bwrap_p75_ms=\(format(b.p75))",
      "kiln_median_ms=\(format(k.median)) kiln_p25_ms=\(format(k.p25)) kiln_p75_ms=\(format(k.p75))",
      "api_median_ms=\(format(a.median)) api_p25_ms=\(format(a.p25)) api_p75_ms=\(format(a.p75))",
      "kiln_over_bwrap=\(format(k.median / b.median)) api_over_bwrap=\(format(a.median / b.median))")

// Measures sandbox spawns from inside one process, as the pipeline engine makes them.
// Usage: sandbox-benchmark spawn RUNS | binds COUNT RUNS
// Prints one line per measurement: the median and the quartiles in milliseconds.
import KilnSandbox
#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
}

func measure(_ label: String, runs: Int, _ spec: SandboxSpec) async throws {
    _ = try await Sandbox.run(spec)  // warm-up: builds the seccomp filter, finds cgroups
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = now()
        let result = try await Sandbox.run(spec)
        samples.append(now() - start)
        precondition(result.exitStatus == 0, "the sandboxed command failed: \(result.summary)")
    }
    samples.sort()
    let median = samples[samples.count / 2]
    print("\(label) median_ms=\(String(format3(median))) p25_ms=\(format3(samples[samples.count / 4])) p75_ms=\(format3(samples[samples.count * 3 / 4])) runs=\(runs)")
}

func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return String(scaled)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    print("usage: sandbox-benchmark spawn RUNS | binds COUNT RUNS")
    exit(2)
}
do {
    switch arguments[1] {
    case "first":
        var t = now()
        _ = try SeccompProfile.bpf.get()
        print("seccomp_ms=\(format3(now() - t))")
        t = now()
        _ = try await Sandbox.run(SandboxSpec(command: ["/bin/true"]))
        print("first_spawn_ms=\(format3(now() - t))")
        t = now()
        _ = try await Sandbox.run(SandboxSpec(command: ["/bin/true"]))
        print("second_spawn_ms=\(format3(now() - t))")
    case "spawn":
        try await measure("api-spawn", runs: Int(arguments[2]) ?? 50, SandboxSpec(command: ["/bin/true"]))
    case "binds":
        let count = Int(arguments[2]) ?? 10
        let runs = arguments.count > 3 ? Int(arguments[3]) ?? 10 : 10
        let source = "/tmp/kiln-bench-binds"
        mkdir(source, 0o755)
        let mounts = (0..<count).map { SandboxSpec.Mount.bind(source: source, target: "/work/d\($0)", readOnly: true) }
        try await measure("api-binds-\(count)", runs: runs, SandboxSpec(command: ["/bin/true"], mounts: mounts))
    default:
        print("unknown benchmark \(arguments[1])")
        exit(2)
    }
} catch {
    print("sandbox-benchmark: \(error)")
    exit(1)
}

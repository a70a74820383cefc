#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// How a limit was enforced, reported in the result so a weaker fallback is never silent.
public enum LimitEnforcement: String, Sendable, Codable {
    case cgroupV2 = "cgroup-v2"
    case cgroupV1 = "cgroup-v1"
    case rlimit
    /// The pid namespace's own `pid_max` (Linux 6.14 and later): a ceiling on process ids.
    case pidNamespace = "pid-namespace"
    case none
}

/// Where this process's cgroup is for one controller, and so where sandboxes' cgroups go.
struct CgroupLocation: Sendable {
    var directory: String
    var version: LimitEnforcement
}

/// Finds, once per process, where kiln may create child cgroups for the memory and pids
/// controllers: the v1 hierarchy that has the controller (as on hybrid systems), or the v2
/// unified hierarchy when it offers the controller.
enum CgroupHierarchy {
    static let locations: [String: CgroupLocation] = discover()

    static func discover() -> [String: CgroupLocation] {
        guard let membership = readSmallFile("/proc/self/cgroup"),
              let mountinfo = readSmallFile("/proc/self/mountinfo") else { return [:] }
        // Mount points: cgroup2 → one path; cgroup v1 → controller name → path.
        var v2Mount: String?
        var v1Mounts: [String: String] = [:]
        for line in mountinfo.split(separator: "\n") {
            // "id parent major:minor root mountpoint options - fstype source superoptions"
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3, fields[3] == "/" else { continue }
            let mountPoint = String(fields[4])
            if tail[0] == "cgroup2" {
                v2Mount = v2Mount ?? mountPoint
            } else if tail[0] == "cgroup" {
                for option in tail[2].split(separator: ",") { v1Mounts[String(option)] = v1Mounts[String(option)] ?? mountPoint }
            }
        }
        var result: [String: CgroupLocation] = [:]
        for line in membership.split(separator: "\n") {
            // "hierarchy-id:controllers:path"
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if parts[0] == "0", parts[1].isEmpty, let v2Mount {
                let directory = v2Mount + (path == "/" ? "" : path)
                let available = readSmallFile(directory + "/cgroup.controllers")?.split(whereSeparator: { $0 == " " || $0 == "\n" }) ?? []
                for controller in ["memory", "pids"] where available.contains(Substring(controller)) && result[controller] == nil {
                    result[controller] = CgroupLocation(directory: directory, version: .cgroupV2)
                }
            } else {
                for controller in parts[1].split(separator: ",") where controller == "memory" || controller == "pids" {
                    if let mount = v1Mounts[String(controller)] {
                        // v1 controllers win on hybrid systems: that is where they are attached.
                        result[String(controller)] = CgroupLocation(directory: mount + (path == "/" ? "" : path), version: .cgroupV1)
                    }
                }
            }
        }
        return result
    }
}

/// The cgroups of one sandbox: created before the clone, joined by the parent before the child
/// goes on, read after the end and removed. A kiln killed with -9 cannot remove its own: the
/// next kiln that creates cgroups there removes empty `kiln-PID-N` ones whose PID is gone.
final class SandboxCgroups {
    private(set) var directories: [(controller: String, path: String, version: LimitEnforcement)] = []
    private nonisolated(unsafe) static var counter = 0
    private static let counterLock = Lock()

    /// Creates cgroups for the limits given. A controller kiln may not use (not delegated, not
    /// writable) is left out; the caller then falls back to rlimits for it.
    static func create(memory: UInt64?, pids: Int?) -> SandboxCgroups {
        let cgroups = SandboxCgroups()
        let n = counterLock.withLock { () -> Int in
            counter += 1
            return counter
        }
        let name = "kiln-\(getpid())-\(n)"
        var wanted: [(String, String)] = []
        if let memory { wanted.append(("memory", String(memory))) }
        if let pids { wanted.append(("pids", String(pids))) }
        for (controller, limit) in wanted {
            guard let location = CgroupHierarchy.locations[controller] else { continue }
            sweepStale(in: location.directory)
            let path = location.directory + "/" + name
            if mkdir(path, 0o755) != 0 && errno != EEXIST { continue }
            do {
                if controller == "memory" {
                    if location.version == .cgroupV2 {
                        try writeControlFile(path + "/memory.max", limit)
                        try? writeControlFile(path + "/memory.swap.max", "0")
                    } else {
                        try writeControlFile(path + "/memory.limit_in_bytes", limit)
                        // Memory+swap, where swap accounting exists: no escaping into swap.
                        try? writeControlFile(path + "/memory.memsw.limit_in_bytes", limit)
                    }
                } else {
                    try writeControlFile(path + "/pids.max", limit)
                }
                cgroups.directories.append((controller, path, location.version))
            } catch {
                rmdir(path)
            }
        }
        return cgroups
    }

    func enforcement(of controller: String) -> LimitEnforcement? {
        directories.first { $0.controller == controller }?.version
    }

    /// Moves `pid` into every cgroup. A failure removes the controller (rlimits still hold).
    func join(_ pid: pid_t) throws(SandboxError) {
        for entry in directories {
            do {
                try writeControlFile(entry.path + "/cgroup.procs", String(pid))
            } catch {
                throw SandboxError(.setupFailed, "joining cgroup \(entry.path): \(error.sentenceWithName)", step: "join cgroup", errno: error)
            }
        }
    }

    /// The peak memory of the whole tree, where the memory cgroup records it.
    func peakMemory() -> UInt64? {
        guard let entry = directories.first(where: { $0.controller == "memory" }) else { return nil }
        let file = entry.version == .cgroupV2 ? "/memory.peak" : "/memory.max_usage_in_bytes"
        return readSmallFile(entry.path + file).flatMap { UInt64($0.trimmingWhitespace) }
    }

    /// Whether the memory cgroup's OOM killer killed something.
    func memoryLimitKilled() -> Bool {
        guard let entry = directories.first(where: { $0.controller == "memory" }) else { return false }
        let file = entry.version == .cgroupV2 ? "/memory.events" : "/memory.oom_control"
        guard let text = readSmallFile(entry.path + file) else { return false }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "oom_kill", let count = Int(fields[1]), count > 0 { return true }
        }
        if entry.version == .cgroupV1, let failures = readSmallFile(entry.path + "/memory.failcnt"),
           let count = Int(failures.trimmingWhitespace), count > 0, text.contains("under_oom 1") {
            return true
        }
        return false
    }

    /// Whether a fork failed because the pids limit was reached.
    func pidsLimitHit() -> Bool {
        guard let entry = directories.first(where: { $0.controller == "pids" }),
              let text = readSmallFile(entry.path + "/pids.events") else { return false }
        return text.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count == 2 && fields[0] == "max" && (Int(fields[1]) ?? 0) > 0
        }
    }

    /// Removes the cgroups. The pid namespace is gone by now, but the kernel may take a moment
    /// to let go of the last task, so EBUSY is retried briefly.
    func destroy() {
        for entry in directories {
            for attempt in 0..<200 {
                if rmdir(entry.path) == 0 || errno == ENOENT { break }
                if errno != EBUSY { break }
                usleep(attempt < 20 ? 500 : 5000)
            }
        }
        directories.removeAll()
    }

    /// Removes `kiln-PID-N` cgroups left by kiln processes that no longer exist.
    static func sweepStale(in directory: String) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard name.hasPrefix("kiln-") else { continue }
            let parts = name.split(separator: "-")
            guard parts.count == 3, let pid = pid_t(parts[1]), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { rmdir(directory + "/" + name) }
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" })
        return String(String.UnicodeScalarView(scalars.reversed().drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).reversed()))
    }
}

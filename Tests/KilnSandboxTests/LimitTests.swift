import Foundation
import KilnTestSupport
import Testing

/// Processes on the host whose command line mentions `marker`.
func hostProcesses(mentioning marker: String) -> [Int32] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return names.compactMap { name -> Int32? in
        guard let pid = Int32(name), pid != getpid(),
              let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let cmdline = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return cmdline.contains(marker) ? pid : nil
    }
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
}

/// Waits until `condition` holds or `seconds` pass.
func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// Names of cgroups that kiln processes created and did not remove.
func leftoverCgroups(ofPid pid: Int32? = nil) -> [String] {
    let roots = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
    var found: [String] = []
    for root in roots {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { continue }
        while let item = enumerator.nextObject() as? String {
            let name = (item as NSString).lastPathComponent
            if name.hasPrefix("kiln-"), pid == nil || name.hasPrefix("kiln-\(pid!)-") { found.append(root + "/" + item) }
            if item.split(separator: "/").count > 4 { enumerator.skipDescendants() }
        }
    }
    return found
}

@Suite("Limits, timeouts and cleanup")
struct LimitTests {
    @Test(arguments: Caller.available)
    func memoryHogIsStopped(caller: Caller) throws {
        let output = SandboxFixture.probe(caller, options: ["--memory", "64M", "--json"], ["hog", "512"])
        // The JSON report is the last line; the probe's own line (if it lived to print) comes first.
        let lines = output.stdout.split(separator: "\n")
        #expect(!output.stdout.contains("ok mib:512"), "\(output)")
        let report = try #require(lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }, "\(output)")
        switch report["memoryEnforcement"] as? String {
        case "cgroup-v1", "cgroup-v2":
            // The OOM killer ends it, and kiln says so with its own exit code.
            #expect(output.status == 123, "\(output)")
            #expect(report["memoryLimitExceeded"] as? Bool == true, "\(output)")
        case "rlimit":
            // No cgroup for an unprivileged caller: the allocation fails instead.
            #expect(lines.first == "errno:ENOMEM mib:" + (lines.first?.split(separator: ":").last ?? ""), "\(output)")
            #expect(output.status == 0, "\(output)")
        default:
            Issue.record("the memory limit was not enforced: \(output)")
        }
    }

    @Test(arguments: Caller.available)
    func forkBombStopsAtTheDefaultCeiling(caller: Caller) throws {
        let output = SandboxFixture.probe(caller, options: ["--json"], ["forkbomb", "100000"])
        let lines = output.stdout.split(separator: "\n")
        let first = try #require(lines.first.map(String.init), "\(output)")
        #expect(first.hasPrefix("errno:EAGAIN forked:"), "\(output)")
        let forked = Int(first.split(separator: ":").last ?? "") ?? .max
        #expect(forked < 4096 && forked > 3000, "\(output)")
        let report = try #require(lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        // Linux 6.14+ has a pid_max per pid namespace; older kernels get the pids cgroup or RLIMIT_NPROC.
        let expected: Set<String> = ["pid-namespace", "cgroup-v1", "cgroup-v2", "rlimit"]
        #expect(expected.contains(report["pidsEnforcement"] as? String ?? ""), "\(report)")
    }

    @Test(arguments: Caller.available)
    func timeoutKillsTheTreeIncludingDaemons(caller: Caller) throws {
        let scratch = SandboxFixture.scratch("kiln-timeout")
        let marker = "daemon-marker-\(UUID().uuidString)"
        let beat = scratch("out/beat")
        try FileManager.default.createDirectory(atPath: scratch("out"), withIntermediateDirectories: true)
        chmod(scratch("out"), 0o777)
        let start = Date()
        let output = SandboxFixture.probe(caller, options: ["--timeout", "1s", "--bind", scratch("out"), "/out", "--json"], ["daemon", "/out/beat", marker])
        let elapsed = Date().timeIntervalSince(start)
        #expect(output.status == 124, "\(output)")
        #expect(output.stdout.contains("\"timedOut\":true"), "\(output)")
        #expect(elapsed >= 1 && elapsed < 4, "took \(elapsed) s")
        // The daemon (its own session, reparented to pid 1) is gone: the beat file stops growing.
        #expect(fileSize(beat) > 0, "the daemon never ran: \(output)")
        let size = fileSize(beat)
        usleep(200_000)
        #expect(fileSize(beat) == size, "the daemon outlived the timeout")
        #expect(hostProcesses(mentioning: marker).isEmpty)
    }

    @Test(arguments: Caller.available)
    func sandboxDiesWithKiln(caller: Caller) throws {
        let scratch = SandboxFixture.scratch("kiln-death")
        let marker = "death-marker-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch("out"), withIntermediateDirectories: true)
        chmod(scratch("out"), 0o777)
        var arguments = [SandboxFixture.kiln, "sandbox", "run", "--memory", "256M", "--ro-bind", SandboxFixture.probe, "/probe",
                         "--bind", scratch("out"), "/out", "--", "/probe", "daemon", "/out/beat", marker]
        if caller == .nobody && getuid() == 0 {
            arguments = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + arguments
        }
        let process = try BackgroundProcess(arguments)
        #expect(eventually(within: 10) { fileSize(scratch("out/beat")) > 0 }, "the sandbox never started")
        #expect(hostProcesses(mentioning: marker).count >= 2, "the command and its daemon run")
        // setpriv execs kiln, so the pid is kiln's either way.
        kill(process.pid, SIGKILL)
        _ = process.wait()
        #expect(eventually(within: 5) { hostProcesses(mentioning: marker).isEmpty }, "sandboxed processes outlived kiln")
        let size = fileSize(scratch("out/beat"))
        usleep(100_000)
        #expect(fileSize(scratch("out/beat")) == size)

        if caller == .root {
            // kiln -9 could not remove its cgroup; the next kiln that creates one sweeps it.
            let stale = leftoverCgroups(ofPid: process.pid)
            let next = SandboxFixture.probe(.root, options: ["--memory", "64M"], ["exit", "0"])
            #expect(next.status == 0, "\(next)")
            #expect(stale.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "stale cgroups remain: \(stale)")
        }
    }

    @Test func nothingIsLeftBehindAfterRuns() {
        let mountsBefore = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        for options in [["--memory", "64M"], ["--timeout", "100ms"], []] {
            _ = SandboxFixture.probe(.root, options: options, ["sleep", "1"])
        }
        let mountsAfter = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(mountsBefore == mountsAfter, "kiln changed the host's mounts")
        #expect(leftoverCgroups().filter { name in
            // Other test processes may be running sandboxes right now; only dead owners count.
            let pid = Int32(name.split(separator: "/").last!.split(separator: "-")[1]) ?? 0
            return kill(pid, 0) != 0
        }.isEmpty)
    }

    @Test(arguments: Caller.available)
    func exitCodesFollowTheCommand(caller: Caller) {
        #expect(SandboxFixture.probe(caller, ["exit", "7"]).status == 7)
        #expect(SandboxFixture.probe(caller, ["signal", "15"]).status == 128 + 15)
        #expect(SandboxFixture.probe(caller, ["signal", "9"]).status == 128 + 9)
    }

    @Test func resultJSONHasTheMeasurements() throws {
        let output = SandboxFixture.probe(.root, options: ["--json"], ["hog", "32"])
        let line = try #require(output.stdout.split(separator: "\n").last, "\(output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(report["exitStatus"] as? Int == 0)
        #expect(report["kilnExitCode"] as? Int == 0)
        #expect((report["wallSeconds"] as? Double ?? 0) > 0)
        #expect((report["userCPUSeconds"] as? Double ?? -1) >= 0)
        #expect((report["systemCPUSeconds"] as? Double ?? 0) > 0)
        // It touched 32 MiB.
        #expect((report["peakMemoryBytes"] as? Int ?? 0) >= 32 << 20, "\(report)")
        #expect(report["seccompProfile"] as? String == "kiln-seccomp-1")
        #expect(report["network"] as? String == "none")
    }
}

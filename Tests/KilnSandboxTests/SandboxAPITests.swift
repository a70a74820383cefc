import Foundation
import KilnSandbox
import KilnTestSupport
import SystemPackage
import Testing

/// Runs a sandbox in this process with stdout captured.
func runCapturing(_ spec: SandboxSpec) async throws -> (result: SandboxResult, stdout: String) {
    let pipe = Pipe()
    var spec = spec
    spec.stdout = .fileDescriptor(FileDescriptor(rawValue: pipe.fileHandleForWriting.fileDescriptor))
    let result = try await Sandbox.run(spec)
    try pipe.fileHandleForWriting.close()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    return (result, String(decoding: data, as: UTF8.self))
}

func probeSpec(_ arguments: [String], mounts: [SandboxSpec.Mount] = []) -> SandboxSpec {
    SandboxSpec(command: ["/probe"] + arguments, mounts: [.bind(source: SandboxFixture.probe, target: "/probe", readOnly: true)] + mounts)
}

@Suite("The KilnSandbox API, as the pipeline engine uses it")
struct SandboxAPITests {
    @Test func capturesOutputAndStatus() async throws {
        let (result, stdout) = try await runCapturing(probeSpec(["id"]))
        #expect(stdout == "uid:1000 gid:1000\n")
        #expect(result.exitStatus == 0)
        #expect(result.exitCode == 0)
    }

    @Test func inheritedDescriptorsDoNotLeak() async throws {
        // A descriptor this process opened without O_CLOEXEC must not reach the command.
        let fd = open("/etc/hostname", O_RDONLY)
        defer { close(fd) }
        #expect(fd > 2)
        let (_, stdout) = try await runCapturing(probeSpec(["fds"]))
        #expect(stdout == "fds:0,1,2\n")
    }

    @Test func manySandboxesAtOnce() async throws {
        // The engine runs stages in parallel: each must get its own output and status.
        try await withThrowingTaskGroup(of: (Int, SandboxResult, String).self) { group in
            for i in 0..<12 {
                group.addTask {
                    let (result, stdout) = try await runCapturing(probeSpec(["exit", String(i)]))
                    return (i, result, stdout)
                }
            }
            for try await (i, result, _) in group {
                #expect(result.exitStatus == Int32(i))
            }
        }
    }

    @Test func cancellationKillsTheSandbox() async throws {
        let task = Task { try await Sandbox.run(probeSpec(["sleep", "30"])) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let result = try await task.value
        #expect(result.signal == SIGKILL)
        // Killed, not finished: well before the command's own 30 s. (The sandbox's own clock:
        // other tests blocking the shared thread pool can delay this test's wall clock.)
        #expect(result.wallSeconds < 25, "\(result)")
    }

    @Test func signalsAreForwardedToTheCommand() async throws {
        let process = try Sandbox.launch(probeSpec(["sleep", "30"]))
        try await Task.sleep(for: .milliseconds(300))
        process.signal(SIGTERM)
        let result = try await process.result()
        #expect(result.signal == SIGTERM)
        #expect(result.exitCode == 128 + SIGTERM)
    }

    @Test func commandNotFoundIsAClearError() async throws {
        let error = await #expect(throws: SandboxError.self) {
            try await Sandbox.run(SandboxSpec(command: ["no-such-tool-anywhere"]))
        }
        #expect(error?.code == .commandNotFound)
        #expect(error?.message.contains("no-such-tool-anywhere") == true)
        #expect(error?.message.contains("PATH") == true)
    }

    @Test func setupFailureNamesTheStepAndErrno() async throws {
        let error = await #expect(throws: SandboxError.self) {
            try await Sandbox.run(SandboxSpec(command: ["/bin/true"], workingDirectory: "/no/such/dir"))
        }
        #expect(error?.code == .setupFailed)
        #expect(error?.step == "chdir")
        #expect(error?.message == "sandbox setup failed: chdir /no/such/dir: No such file or directory (ENOENT)")
    }

    @Test func missingBindSourceIsRefusedBeforeCloning() async throws {
        let error = await #expect(throws: SandboxError.self) {
            try await Sandbox.run(SandboxSpec(command: ["/bin/true"], mounts: [.bind(source: "/no/such/source", target: "/work/data", readOnly: true)]))
        }
        #expect(error?.code == .invalidSpec)
        #expect(error?.message.contains("/no/such/source") == true)
        #expect(error?.message.contains("/work/data") == true)
    }

    @Test(arguments: [
        ("relative/target", "absolute path"),
        ("/", "root"),
        ("/work/../etc", "\"..\""),
        ("/proc/evil", "/proc"),
    ])
    func badTargetsAreRefused(target: String, mention: String) async throws {
        let error = await #expect(throws: SandboxError.self) {
            try await Sandbox.run(SandboxSpec(command: ["/bin/true"], mounts: [.tmpfs(target: target, size: nil)]))
        }
        #expect(error?.code == .invalidSpec)
        #expect(error?.message.contains(mention) == true, "\(error?.message ?? "")")
    }

    @Test func aZeroSizedTmpfsIsRefused() async throws {
        // tmpfs would read size=0 as unlimited.
        let error = await #expect(throws: SandboxError.self) {
            try await Sandbox.run(SandboxSpec(command: ["/bin/true"], mounts: [.tmpfs(target: "/scratch", size: 0)]))
        }
        #expect(error?.message.contains("at least 4K") == true)
    }

    @Test func nestedMountsWorkInAnyOrder() async throws {
        let scratch = SandboxFixture.scratch("kiln-nested")
        try FileManager.default.createDirectory(atPath: scratch("data"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: scratch("data/x"), contents: Data("x".utf8))
        // The deeper mount comes first; kiln mounts /work before /work/data.
        let spec = probeSpec(["read", "/work/data/x"], mounts: [
            .bind(source: scratch("data"), target: "/work/data", readOnly: true),
            .tmpfs(target: "/work", size: 1 << 20),
        ])
        let (result, stdout) = try await runCapturing(spec)
        #expect(stdout == "ok\n")
        #expect(result.exitStatus == 0)
    }

    @Test func withoutTheHostToolchainOnlyDeclaredFilesExist() async throws {
        var spec = probeSpec(["read", "/usr/bin/env"])
        spec.hostToolchain = false
        let (_, stdout) = try await runCapturing(spec)
        #expect(stdout == "errno:ENOENT\n")
    }

    @Test func pythonRunsWithTheDefaultToolchain() async throws {
        try #require(FileManager.default.fileExists(atPath: "/usr/bin/python3"), "needs Debian's python3")
        let (result, stdout) = try await runCapturing(SandboxSpec(command: ["python3", "-c", "import os, sys; print(os.getcwd(), sys.flags.hash_randomization, os.environ['HOME'])"]))
        #expect(result.exitStatus == 0)
        #expect(stdout == "/ 0 /tmp/home\n")
    }

    @Test func unitsParse() {
        #expect(Units.bytes("512M") == 512 << 20)
        #expect(Units.bytes("2G") == 2 << 30)
        #expect(Units.bytes("1.5G") == 3 << 29)
        #expect(Units.bytes("4096") == 4096)
        #expect(Units.bytes("lots") == nil)
        #expect(Units.bytes("-1M") == nil)
        #expect(Units.seconds("30s") == 30)
        #expect(Units.seconds("10m") == 600)
        #expect(Units.seconds("1h30m") == 5400)
        #expect(Units.seconds("500ms") == 0.5)
        #expect(Units.seconds("90") == 90)
        #expect(Units.seconds("soon") == nil)
        #expect(Units.seconds("5x") == nil)
    }
}

import Foundation
import KilnTestSupport
import Testing

@Suite("kiln sandbox run: options, errors and exit codes")
struct SandboxCommandTests {
    @Test(arguments: [
        (["--ro-bind", "/tmp", "--", "/bin/true"], "'--ro-bind' takes two values"),
        (["--bind", "/tmp", "relative", "--", "/bin/true"], "must be an absolute path"),
        (["--ro-bind", "/tmp", "--bind", "/tmp", "/a", "--", "/bin/true"], "'--ro-bind' takes two values"),
        (["--env", "NOEQUALS", "--", "/bin/true"], "must be KEY=VALUE"),
        (["--memory", "lots", "--", "/bin/true"], "is not a size"),
        (["--timeout", "soon", "--", "/bin/true"], "is not a duration"),
        (["--tmpfs", "/scratch:big", "--", "/bin/true"], "is not a size"),
        (["--network", "internet", "--", "/bin/true"], "internet"),
        (["--pids", "0", "--", "/bin/true"], "at least 1"),
        ([], "Say what to run"),
    ])
    func usageErrors(arguments: [String], message: String) {
        let output = ChildProcess.kiln(["sandbox", "run"] + arguments)
        #expect(output.status == 64, "\(output)")
        #expect(output.stderr.contains(message), "\(output)")
        #expect(!output.stderr.contains("Fatal error"), "\(output)")
    }

    @Test func bindsArePairedInOrderAndWritesReachTheHost() throws {
        let scratch = ScratchDirectory("kiln-cli-binds")
        try FileManager.default.createDirectory(atPath: scratch("in"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch("out"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: scratch("in/x"), contents: Data("41".utf8))
        let output = ChildProcess.kiln(["sandbox", "run", "--ro-bind", scratch("in"), "/work/in", "--bind", scratch("out"), "/work/out",
                                        "--cwd", "/work", "--", "/bin/sh", "-c", "echo $(( $(cat in/x) + 1 )) > out/y; touch in/z"])
        #expect(output.status == 1, "touching the read-only input fails: \(output)")
        #expect(output.stderr.contains("Read-only file system"), "\(output)")
        #expect(try String(contentsOfFile: scratch("out/y"), encoding: .utf8) == "42\n")
        #expect(!FileManager.default.fileExists(atPath: scratch("in/z")))
    }

    @Test func commandNotFoundExits127() {
        let output = ChildProcess.kiln(["sandbox", "run", "--", "no-such-command-xyz"])
        #expect(output.status == 127, "\(output)")
        #expect(output.stderr.contains("cannot run \"no-such-command-xyz\""), "\(output)")
    }

    @Test func setupFailureExits125AndNamesTheStep() {
        let output = ChildProcess.kiln(["sandbox", "run", "--cwd", "/nowhere", "--", "/bin/true"])
        #expect(output.status == 125, "\(output)")
        #expect(output.stderr.contains("chdir /nowhere: No such file or directory (ENOENT)"), "\(output)")
    }

    @Test func failuresAreJSONWithJSON() throws {
        let output = ChildProcess.kiln(["sandbox", "run", "--json", "--cwd", "/nowhere", "--", "/bin/true"])
        #expect(output.status == 125, "\(output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "\(output)")
        let error = try #require(report["error"] as? [String: Any])
        #expect(error["code"] as? String == "setupFailed")
        #expect(error["step"] as? String == "chdir")
        #expect(error["errno"] as? Int == 2)
        #expect(report["kilnExitCode"] as? Int == 125)
    }

    @Test func withoutUserNamespacesKilnSaysWhyAndHowToEnableThem() {
        // user.max_user_namespaces is per user namespace: set it to 0 in a throwaway one.
        let output = ChildProcess.run("/usr/bin/unshare", ["-U", "-r", "--fork", "/bin/sh", "-c",
            "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" sandbox run -- /bin/true", SandboxFixture.kiln])
        #expect(output.status == 125, "\(output)")
        #expect(output.stderr.contains("cannot create a user namespace"), "\(output)")
        #expect(output.stderr.contains("sysctl -w user.max_user_namespaces="), "\(output)")
    }

    @Test func missingBindSourceIsAUsageError() {
        let output = ChildProcess.kiln(["sandbox", "run", "--ro-bind", "/no/such/dir", "/work", "--", "/bin/true"])
        #expect(output.status == 64, "\(output)")
        #expect(output.stderr.contains("\"/no/such/dir\" (for /work): No such file or directory"), "\(output)")
    }

    @Test func helpTeachesTheOptions() {
        let output = ChildProcess.kiln(["sandbox", "run", "--help"])
        #expect(output.status == 0)
        for option in ["--ro-bind", "--bind", "--tmpfs", "--env", "--cwd", "--hostname", "--network", "--memory", "--pids", "--cpus", "--timeout", "--json", "Examples:"] {
            #expect(output.stdout.contains(option), "--help does not mention \(option)")
        }
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func signalsToKilnReachTheCommand(signal: Int32) throws {
        // The command has its own session, so a terminal's Ctrl-C reaches only kiln, which forwards it.
        let process = try BackgroundProcess([SandboxFixture.kiln, "sandbox", "run", "--ro-bind", SandboxFixture.probe, "/probe", "--", "/probe", "sleep", "30"])
        usleep(500_000)
        let start = Date()
        kill(process.pid, signal)
        // kiln itself exits normally, with the status of the command the signal ended.
        #expect(process.wait() == 128 + signal)
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func stdinAndOutputPassThrough() {
        let output = ChildProcess.run(ChildProcess.kilnPath, ["sandbox", "run", "--", "/bin/sh", "-c", "tr a-z A-Z; echo err >&2"], stdin: Data("hello".utf8))
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout == "HELLO")
        #expect(output.stderr == "err\n")
    }
}

import Foundation

/// Runs programs for tests and captures what they print.
public enum ChildProcess {
    public struct Output: Sendable, CustomStringConvertible {
        public var status: Int32
        /// True when the process was killed by a signal (then `status` is the signal number).
        public var signaled: Bool
        public var stdout: String
        public var stderr: String

        public var description: String { "status \(status)\(signaled ? " (signal)" : "")\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    /// The `kiln` executable built beside the running test bundle.
    public static var kilnPath: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("kiln").path
    }

    /// Runs `executable` with `arguments` to completion.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        currentDirectory: String? = nil, stdin: Data? = nil
    ) -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        do {
            try process.run()
        } catch {
            return Output(status: -1, signaled: false, stdout: "", stderr: "could not start \(executable): \(error)")
        }
        // Read both pipes concurrently so neither fills up.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try? input.fileHandleForWriting.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            signaled: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs the built `kiln` with `arguments`.
    @discardableResult
    public static func kiln(_ arguments: [String], environment: [String: String]? = nil, currentDirectory: String? = nil) -> Output {
        run(kilnPath, arguments, environment: environment, currentDirectory: currentDirectory)
    }

    /// Runs `/bin/sh -c script`.
    @discardableResult
    public static func shell(_ script: String, currentDirectory: String? = nil, environment: [String: String]? = nil) -> Output {
        run("/bin/sh", ["-c", script], environment: environment, currentDirectory: currentDirectory)
    }
}

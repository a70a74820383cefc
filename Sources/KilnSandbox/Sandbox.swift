#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import Dispatch
import SystemPackage

/// What happened to a sandboxed command.
public struct SandboxResult: Sendable, Codable, Equatable {
    /// The command's exit code, or nil if it died of a signal (or was never reported).
    public var exitStatus: Int32?
    /// The signal that ended the command, if one did.
    public var signal: Int32?
    /// `--timeout` expired and the tree was killed.
    public var timedOut: Bool
    /// The memory cgroup's OOM killer killed part of the tree.
    public var memoryLimitExceeded: Bool
    /// A fork failed because the pids limit was reached (the command may still have succeeded).
    public var pidsLimitReached: Bool
    public var wallSeconds: Double
    public var userCPUSeconds: Double
    public var systemCPUSeconds: Double
    /// The peak memory of the whole tree where the memory cgroup measured it, else the largest
    /// resident set of any one process.
    public var peakMemoryBytes: UInt64
    public var memoryEnforcement: LimitEnforcement
    public var pidsEnforcement: LimitEnforcement

    /// kiln's exit code for this result: the command's code, 128+N for signal N, and kiln's own
    /// codes for a timeout (124) or a limit kill (123).
    public var exitCode: Int32 {
        if timedOut { return 124 }
        if memoryLimitExceeded && exitStatus != 0 { return 123 }
        if let exitStatus { return exitStatus }
        if let signal { return 128 + signal }
        return 125
    }

    /// `exited 0`, `killed by SIGKILL`, `timed out`: for logs and summaries.
    public var summary: String {
        if timedOut { return "timed out" }
        if memoryLimitExceeded && exitStatus != 0 { return "killed: memory limit exceeded" }
        if let exitStatus { return "exited \(exitStatus)" }
        if let signal { return "killed by signal \(signal)" }
        return "ended without a status"
    }
}

/// Runs commands in the sandbox: `Sandbox.run(spec)`, or `launch` for a handle that can be
/// signalled while the command runs.
public enum Sandbox {
    /// Runs `spec` to completion. Cancelling the task kills the whole sandbox.
    public static func run(_ spec: SandboxSpec) async throws(SandboxError) -> SandboxResult {
        let process = try launch(spec)
        let outcome = await withTaskCancellationHandler {
            do throws(SandboxError) { return Result<SandboxResult, SandboxError>.success(try await process.result()) }
            catch { return .failure(error) }
        } onCancel: {
            process.signal(SIGKILL)
        }
        return try outcome.get()
    }

    /// Runs `spec` on the calling thread, which must not exit before this returns (the sandbox's
    /// parent-death signal is tied to it): no other thread is involved. The signals listed are
    /// forwarded to the sandbox while it runs, e.g. the CLI's Ctrl-C.
    public static func runOnCurrentThread(_ spec: SandboxSpec, forwardingSignals signals: [Int32] = []) throws(SandboxError) -> SandboxResult {
        guard !spec.command.isEmpty, !spec.command[0].isEmpty else {
            throw SandboxError(.invalidSpec, "no command given: say what to run, e.g. `-- python3 train.py`")
        }
        let process = SandboxProcess(prepared: try PreparedLaunch(spec), forwardingSignals: signals)
        return try process.superviseOnCurrentThread()
    }

    /// Starts `spec` and returns once the sandbox's pid 1 exists. Setup failures, which happen
    /// after that, are thrown by `result()`.
    public static func launch(_ spec: SandboxSpec) throws(SandboxError) -> SandboxProcess {
        guard !spec.command.isEmpty, !spec.command[0].isEmpty else {
            throw SandboxError(.invalidSpec, "no command given: say what to run, e.g. `-- python3 train.py`")
        }
        let prepared = try PreparedLaunch(spec)
        let process = SandboxProcess(prepared: prepared)
        try process.start()
        return process
    }
}

/// A running sandbox. Its supervisor thread clones the sandbox (the parent-death signal is tied
/// to the creating *thread*, so that thread must outlive the sandbox), then waits for it.
public final class SandboxProcess: @unchecked Sendable {
    private let lock = Lock()
    private var prepared: PreparedLaunch?
    private var pidfd: Int32 = -1
    private var finished: Result<SandboxResult, SandboxError>?
    private var waiters: [CheckedContinuation<Result<SandboxResult, SandboxError>, Never>] = []
    private let launched = DispatchSemaphore(value: 0)
    private var launchError: SandboxError?
    /// The sandbox's pid 1, as the host sees it.
    public private(set) var pid: pid_t = 0

    private let forwardedSignals: [Int32]

    init(prepared: PreparedLaunch, forwardingSignals: [Int32] = []) {
        self.prepared = prepared
        self.forwardedSignals = forwardingSignals
    }

    func superviseOnCurrentThread() throws(SandboxError) -> SandboxResult {
        supervise()
        return try lock.withLock { finished! }.get()
    }

    func start() throws(SandboxError) {
        let context = Unmanaged.passRetained(self).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, 256 * 1024)
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { context in
            let process = Unmanaged<SandboxProcess>.fromOpaque(context!).takeRetainedValue()
            process.supervise()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<SandboxProcess>.fromOpaque(context).release()
            throw SandboxError(.setupFailed, "starting the supervisor thread: \(Errno(rawValue: rc).sentenceWithName)")
        }
        launched.wait()
        if let launchError { throw launchError }
    }

    /// Sends `signal` to the sandbox's pid 1, which forwards it to the command's process group
    /// (SIGKILL ends the whole sandbox at once). Does nothing once the sandbox has ended.
    public func signal(_ signal: Int32) {
        lock.withLock {
            if pidfd >= 0 { _ = kiln_pidfd_send_signal(pidfd, signal) }
        }
    }

    /// Waits for the sandbox to end.
    public func result() async throws(SandboxError) -> SandboxResult {
        let outcome = await withCheckedContinuation { continuation in
            let done: Result<SandboxResult, SandboxError>? = lock.withLock {
                if let finished { return finished }
                waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        return try outcome.get()
    }

    // MARK: - The supervisor thread

    private func supervise() {
        guard let prepared else { return }
        self.prepared = nil
        let outcome: Result<SandboxResult, SandboxError>
        do throws(SandboxError) {
            outcome = .success(try prepared.runToCompletion(
                onLaunch: { pid, pidfd in
                    lock.withLock {
                        self.pid = pid
                        self.pidfd = pidfd
                    }
                    if !forwardedSignals.isEmpty { _ = kiln_forward_signals_begin(pidfd, forwardedSignals, forwardedSignals.count) }
                    launched.signal()
                },
                onLaunchFailure: { error in
                    launchError = error
                    launched.signal()
                }
            ))
        } catch {
            outcome = .failure(error)
        }
        if !forwardedSignals.isEmpty { kiln_forward_signals_end(forwardedSignals, forwardedSignals.count) }
        let waiting = lock.withLock { () -> [CheckedContinuation<Result<SandboxResult, SandboxError>, Never>] in
            if pidfd >= 0 { close(pidfd) }
            pidfd = -1
            finished = outcome
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiting { waiter.resume(returning: outcome) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import KilnRecipe
import KilnSandbox
import KilnStore
import SystemPackage

/// Runs one stage: an action-cache hit restores its outputs; a miss runs it in the sandbox on a
/// fresh staging copy of `/work` (declared inputs bound read-only, everything else of the
/// workspace absent), checks its outputs, packs them into the store, writes the action result
/// and only then puts the outputs into the workspace. A failed stage leaves nothing behind.
public struct Executor: Sendable {
    public let workspace: String
    public let store: Store
    public let planner: Planner
    /// Run even on a hit (the result is still recorded).
    public let noCache: Bool
    /// This run's invocation id, written into the action results it creates.
    public let invocation: String
    /// Off for replays: their results must not enter the action cache.
    public let storesActionResults: Bool

    public init(workspace: String, store: Store, planner: Planner, noCache: Bool = false, invocation: String = Executor.newInvocation(),
                storesActionResults: Bool = true) {
        self.invocation = invocation
        self.storesActionResults = storesActionResults
        self.workspace = workspace
        self.store = store
        self.planner = planner
        self.noCache = noCache
    }

    /// 16 random hex digits.
    public static func newInvocation() -> String {
        let n = UInt64.random(in: 0...UInt64.max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    var restorer: Restorer { Restorer(workspace: workspace, store: store, statCache: planner.statCache) }

    /// The cached result for `key`, if any (an unreadable or old-format one counts as a miss).
    public func cachedResult(_ key: Digest) -> ActionResult? {
        guard let bytes = try? store.actionResult(key) else { return nil }
        return ActionResult.decode(bytes)
    }

    var archiver: InputArchiver { InputArchiver(workspace: workspace, store: store, statCache: planner.statCache) }

    /// Runs or restores `stage`, whose key inputs the planner computed. `output` gets each line
    /// the stage prints, as it prints it. The outcome carries the key inputs, with every
    /// workspace input's archive filled in, for the run record.
    ///
    /// Cancelling the task interrupts the stage: its sandbox is killed with its whole process
    /// tree, and it ends `.interrupted` with no action result written and nothing restored.
    /// `cpuSet` pins the stage to those CPUs (the scheduler's choice); nil: the first `cpus`.
    public func execute(_ stage: Stage, inputs planned: ActionKeyInputs, key known: Digest? = nil, cpuSet: [Int]? = nil,
                        output: @escaping @Sendable (StageStream, String) -> Void = { _, _ in }) async -> StageOutcome {
        let start = ContinuousClock.now
        func seconds() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        var inputs = planned
        let key = known ?? inputs.key
        var outcome: StageOutcome
        do throws(EngineError) {
            if Task.isCancelled { throw EngineError(.io, "interrupted") }
            try archiver.archive(&inputs, stage: stage.name)
            outcome = try await restoreOrRun(stage, key: key, inputs: inputs, cpuSet: cpuSet, output: output)
                ?? StageOutcome(stage: stage.name, status: .interrupted, key: key, reason: "interrupted")
        } catch {
            outcome = Task.isCancelled
                ? StageOutcome(stage: stage.name, status: .interrupted, key: key, reason: "interrupted")
                : StageOutcome(stage: stage.name, status: .failed, key: key, reason: error.message)
        }
        outcome.seconds = seconds()
        outcome.inputs = inputs
        return outcome
    }

    /// A hit whose outputs the workspace already holds, so nothing needs extracting: the
    /// scheduler takes it inline rather than starting a task (most stages of a no-op run).
    /// Nil for anything else, which then goes through `execute`.
    public func hitInPlace(_ stage: Stage, inputs planned: ActionKeyInputs, key: Digest) -> StageOutcome? {
        guard !noCache, !Task.isCancelled, let cached = cachedResult(key) else { return nil }
        for output in stage.outputs {
            let path = WorkspaceFiles.join(workspace, output.path)
            guard let tree = cached.outputTrees[output.description], WorkspaceFiles.existsNoFollow(path),
                  (try? TreeHasher.digest(of: path, cache: planner.statCache).digest) == tree else { return nil }
        }
        var inputs = planned
        let metrics: JSONValue?
        do throws(EngineError) {
            try archiver.archive(&inputs, stage: stage.name)
            metrics = try self.metrics(of: cached, stage: stage)
        } catch {
            return nil
        }
        var outcome = StageOutcome(stage: stage.name, status: .cached, key: key, result: cached, metrics: metrics)
        outcome.inputs = inputs
        return outcome
    }

    /// A hit restored, or the stage run; nil when the task was cancelled.
    func restoreOrRun(_ stage: Stage, key: Digest, inputs: ActionKeyInputs, cpuSet: [Int]?,
                      output: @escaping @Sendable (StageStream, String) -> Void) async throws(EngineError) -> StageOutcome? {
        if !noCache, let cached = cachedResult(key) {
            // A result whose blobs gc removed (or that is corrupt) is a miss: the stage reruns
            // and its new result replaces it.
            do {
                let metrics = try restored(cached, of: stage)
                return StageOutcome(stage: stage.name, status: .cached, key: key, result: cached, metrics: metrics)
            } catch {}
            if Task.isCancelled { return nil }
        }
        return try await runInSandbox(stage, key: key, inputs: inputs, cpuSet: cpuSet, output: output)
    }

    /// Restores a cached result's outputs; returns its metrics (parsed).
    func restored(_ result: ActionResult, of stage: Stage) throws(EngineError) -> JSONValue? {
        // Interrupted before restoring: leave the workspace as it is.
        if Task.isCancelled { throw EngineError(.io, "interrupted") }
        try restorer.restore(result, of: stage)
        return try metrics(of: result, stage: stage)
    }

    func metrics(of result: ActionResult, stage: Stage) throws(EngineError) -> JSONValue? {
        guard let d = result.metrics else { return nil }
        let bytes: [UInt8]
        do { bytes = try store.read(d) } catch { throw EngineError(.store, "cannot read the metrics of stage '\(stage.name)': \(error.message)") }
        return try Self.parseMetrics(bytes, stage: stage)
    }

    static func parseMetrics(_ bytes: [UInt8], stage: Stage) throws(EngineError) -> JSONValue {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else {
            throw EngineError(.badMetrics, "stage '\(stage.name)': its metrics file \(stage.metrics?.description ?? "") is not JSON. Write one JSON object, such as {\"accuracy\": 0.93}.")
        }
        return value
    }

    /// Nil when the task was cancelled (the stage was interrupted): then nothing was stored.
    /// `inputs` (absent for replays) lets the action result name its run-record detail blob.
    func runInSandbox(_ stage: Stage, key: Digest, inputs: ActionKeyInputs? = nil, cpuSet: [Int]? = nil,
                      output: @escaping @Sendable (StageStream, String) -> Void) async throws(EngineError) -> StageOutcome? {
        let (root, imageInUse) = try ImageResolution.root(for: stage, planner: planner, store: store)
        defer { imageInUse?.release() }
        let staging = try Staging(in: store.tmpDirectory)
        defer { staging.remove() }
        let work = staging.work

        // /work is the staging folder; each input is bound read-only over an empty placeholder.
        var mounts: [SandboxSpec.Mount] = [.bind(source: work, target: "/work", readOnly: false)]
        var placeholders: Set<String> = []
        for input in stage.inputs {
            for path in input.isGlob ? planner.expand(input) : [input.path] where !placeholders.contains(path) {
                let host = WorkspaceFiles.join(workspace, path)
                guard WorkspaceFiles.exists(host) else {
                    throw EngineError(.missingInput, "stage '\(stage.name)': its input \(path) does not exist in the workspace \(workspace).")
                }
                let inside = WorkspaceFiles.join(work, path)
                if WorkspaceFiles.isDirectory(host) {
                    try WorkspaceFiles.makeDirectories(inside)
                } else {
                    try WorkspaceFiles.makeDirectories(WorkspaceFiles.parent(inside))
                    if !WorkspaceFiles.existsNoFollow(inside) { try WorkspaceFiles.createEmptyFile(inside) }
                }
                mounts.append(.bind(source: host, target: "/work/" + path, readOnly: true))
                placeholders.insert(path)
            }
        }
        for output in stage.outputs {
            let inside = WorkspaceFiles.join(work, output.path)
            try WorkspaceFiles.makeDirectories(output.isDirectory ? inside : WorkspaceFiles.parent(inside))
        }

        let stdoutPath = WorkspaceFiles.join(staging.root, "stdout")
        let stderrPath = WorkspaceFiles.join(staging.root, "stderr")
        if Task.isCancelled { return nil }
        // The logs are teed: stored whole (below), and streamed line by line as they come.
        let out = try OutputTee(log: stdoutPath) { output(.stdout, $0) }
        let err: OutputTee
        do { err = try OutputTee(log: stderrPath) { output(.stderr, $0) } } catch {
            try? out.finish()
            throw error
        }
        let spec = SandboxSpec(
            command: stage.argv, mounts: mounts, environment: Planner.environment(for: stage),
            workingDirectory: "/work", network: stage.network == .host ? .host : .none,
            // Pinned to the CPUs the scheduler gave it (`cpus:` of them, the least used), not the
            // sandbox's "first N", which would put parallel stages on one core. The env (and key)
            // hold `cpus` through *_NUM_THREADS already.
            limits: SandboxSpec.Limits(memory: stage.memoryBytes, cpuSet: cpuSet ?? Array(0..<stage.cpus), timeout: stage.timeoutSeconds),
            stdout: .fileDescriptor(FileDescriptor(rawValue: out.writeEnd)),
            stderr: .fileDescriptor(FileDescriptor(rawValue: err.writeEnd)))
        let launched: Result<SandboxResult, SandboxError>
        do throws(SandboxError) {
            launched = .success(try await Sandbox.run(ImageResolution.onRoot(spec, root, stage: stage, planner: planner)))
        } catch { launched = .failure(error) }
        // The readers end once every process of the sandbox has gone (a cancelled one included:
        // the kill takes its whole tree), which closes the pipes' last write ends.
        let logged: Result<Void, EngineError>
        do throws(EngineError) {
            try out.finish()
            try err.finish()
            logged = .success(())
        } catch {
            logged = .failure(error)
        }
        if Task.isCancelled { return nil }
        let result: SandboxResult
        switch launched {
        case .success(let r): result = r
        case .failure(let error): throw EngineError(.sandbox, "stage '\(stage.name)': \(error.message)")
        }
        try logged.get()

        guard result.exitCode == 0 else {
            return StageOutcome(stage: stage.name, status: .failed, key: key, reason: result.summary,
                                stderrTail: Self.tail(WorkspaceFiles.read(stderrPath) ?? []))
        }
        for output in stage.outputs where !WorkspaceFiles.existsNoFollow(WorkspaceFiles.join(work, output.path)) {
            throw EngineError(.missingOutput, "stage '\(stage.name)' exited 0 but did not create its declared output \(output.description) (declared at \(output.location)). Make the command write it under /work, or remove it from outputs:.")
        }
        for output in stage.outputs where WorkspaceFiles.isSymlink(WorkspaceFiles.join(work, output.path)) {
            throw EngineError(.missingOutput, "stage '\(stage.name)': its output \(output.description) is a symbolic link. kiln stores files and folders, not links to them: write the file itself there (links inside an output folder are kept).")
        }
        let stray = Staging.undeclaredWrites(in: work, outputs: stage.outputs, placeholders: placeholders)
        if !stray.isEmpty {
            let shown = stray.prefix(5).joined(separator: ", ") + (stray.count > 5 ? " and \(stray.count - 5) more" : "")
            throw EngineError(.undeclaredOutput, "stage '\(stage.name)' wrote \(shown), which it does not declare as outputs. Add them to its outputs: (at \(stage.location)), or write scratch files under /tmp.")
        }
        var metricsBytes: [UInt8]?
        var metricsValue: JSONValue?
        if let m = stage.metrics {
            guard let bytes = WorkspaceFiles.read(WorkspaceFiles.join(work, m.path)) else {
                throw EngineError(.badMetrics, "stage '\(stage.name)' did not create its metrics file \(m.path).")
            }
            metricsValue = try Self.parseMetrics(bytes, stage: stage)
            metricsBytes = bytes
        }

        // Last point to stop without a result: once it is written, the stage counts as ran.
        if Task.isCancelled { return nil }
        let actionResult: ActionResult
        do {
            // Shared lock from the first blob until the result naming them is written (gc waits).
            actionResult = try store.withLock(.shared) { () throws(StoreError) -> ActionResult in
                var outputs: [String: Digest] = [:], trees: [String: Digest] = [:], kinds: [String: String] = [:]
                for output in stage.outputs {
                    let path = WorkspaceFiles.join(work, output.path)
                    let tree = try TreeHasher.digest(of: path)
                    trees[output.description] = tree.digest
                    kinds[output.description] = tree.kind == .directory ? "dir" : "file"
                    outputs[output.description] = try ArchiveWriter().store(source: path, in: store).digest!
                }
                var r = ActionResult(
                    version: ActionResult.currentVersion, stage: stage.name, outputs: outputs, outputTrees: trees,
                    outputKinds: kinds, exitStatus: 0, stdout: try store.put(file: stdoutPath),
                    stderr: try store.put(file: stderrPath), metrics: try metricsBytes.map { (b) throws(StoreError) in try store.put(bytes: b) },
                    wallSeconds: result.wallSeconds, cpuSeconds: result.userCPUSeconds + result.systemCPUSeconds,
                    peakMemoryBytes: result.peakMemoryBytes, invocation: invocation)
                if let inputs {
                    var ran = StageOutcome(stage: stage.name, status: .ran, key: key, result: r, metrics: metricsValue)
                    ran.inputs = inputs
                    r.detail = try store.put(bytes: RunRecord.json(RunRecord.StageRecord(ran, stage: stage, gates: []).detailPart))
                }
                if storesActionResults { try store.setActionResult(key, json: r.encoded()) }
                return r
            }
        } catch {
            throw EngineError(.store, "stage '\(stage.name)': cannot store its outputs: \(error.message)")
        }
        try restorer.restore(actionResult, of: stage)
        return StageOutcome(stage: stage.name, status: .ran, key: key, result: actionResult, metrics: metricsValue)
    }

    /// The last lines of a log, for a failure message.
    static func tail(_ bytes: [UInt8], lines: Int = 10) -> String {
        var text = Substring(String(decoding: bytes.suffix(4096), as: UTF8.self))
        while text.last == "\n" { text = text.dropLast() }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

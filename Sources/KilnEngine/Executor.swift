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

    public init(workspace: String, store: Store, planner: Planner, noCache: Bool = false) {
        self.workspace = workspace
        self.store = store
        self.planner = planner
        self.noCache = noCache
    }

    var restorer: Restorer { Restorer(workspace: workspace, store: store, statCache: planner.statCache) }

    /// The cached result for `key`, if any (an unreadable or old-format one counts as a miss).
    public func cachedResult(_ key: Digest) -> ActionResult? {
        guard let bytes = try? store.actionResult(key) else { return nil }
        return ActionResult.decode(bytes)
    }

    public func execute(_ stage: Stage, key: Digest) async -> StageOutcome {
        let start = ContinuousClock.now
        func seconds() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        do throws(EngineError) {
            if !noCache, let cached = cachedResult(key) {
                // A result whose blobs gc removed (or that is corrupt) is a miss: the stage reruns
                // and its new result replaces it.
                do {
                    let metrics = try restored(cached, of: stage)
                    return StageOutcome(stage: stage.name, status: .cached, key: key, result: cached,
                                        seconds: seconds(), metrics: metrics)
                } catch {}
            }
            var outcome = try await runInSandbox(stage, key: key)
            outcome.seconds = seconds()
            return outcome
        } catch {
            return StageOutcome(stage: stage.name, status: .failed, key: key, reason: error.message, seconds: seconds())
        }
    }

    /// Restores a cached result's outputs; returns its metrics (parsed).
    func restored(_ result: ActionResult, of stage: Stage) throws(EngineError) -> JSONValue? {
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

    func runInSandbox(_ stage: Stage, key: Digest) async throws(EngineError) -> StageOutcome {
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
        let result: SandboxResult
        do {
            let out = try FileDescriptor.open(stdoutPath, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite, .groupRead, .otherRead])
            defer { try? out.close() }
            let err = try FileDescriptor.open(stderrPath, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite, .groupRead, .otherRead])
            defer { try? err.close() }
            let spec = SandboxSpec(
                command: stage.argv, mounts: mounts, environment: Planner.environment(for: stage),
                workingDirectory: "/work", network: stage.network == .host ? .host : .none,
                // No affinity (cpus: nil): the sandbox pins to the *first* N CPUs, which would put
                // parallel stages on one core. The key and *_NUM_THREADS still hold `cpus`.
                limits: SandboxSpec.Limits(memory: stage.memoryBytes, cpus: nil, timeout: stage.timeoutSeconds),
                stdout: .fileDescriptor(out), stderr: .fileDescriptor(err))
            result = try await Sandbox.run(ImageResolution.onRoot(spec, root, stage: stage, planner: planner))
        } catch let error as SandboxError {
            throw EngineError(.sandbox, "stage '\(stage.name)': \(error.message)")
        } catch {
            throw EngineError(.io, "stage '\(stage.name)': cannot create its log files in \(staging.root): \(error)")
        }

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
                let r = ActionResult(
                    version: ActionResult.currentVersion, stage: stage.name, outputs: outputs, outputTrees: trees,
                    outputKinds: kinds, exitStatus: 0, stdout: try store.put(file: stdoutPath),
                    stderr: try store.put(file: stderrPath), metrics: try metricsBytes.map { (b) throws(StoreError) in try store.put(bytes: b) },
                    wallSeconds: result.wallSeconds, cpuSeconds: result.userCPUSeconds + result.systemCPUSeconds,
                    peakMemoryBytes: result.peakMemoryBytes)
                try store.setActionResult(key, json: r.encoded())
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

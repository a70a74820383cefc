import KilnRecipe
import KilnStore

/// `kiln status`: whether each stage is up to date, and why not (like `dvc status`), computed
/// without running anything. A stage is up to date when its key is in the action cache and the
/// workspace holds its outputs as cached; the reasons for a stale one come from comparing its key
/// inputs now with those of the newest recorded run that ran or restored it.
public struct StageStatus: Sendable, Encodable {
    public enum State: String, Sendable, Encodable {
        /// Cached, and the workspace has its outputs.
        case upToDate = "up-to-date"
        /// Cached, but the workspace's copy of an output differs or is missing (`kiln run` restores it).
        case outputsChanged = "outputs-changed"
        /// Its key is not in the cache: `kiln run` would run it.
        case stale
    }

    public var stage: String
    public var state: State
    public var reasons: [String]
    public var key: Digest?
}

extension Pipeline {
    /// The status of every selected stage, in topological order. `previous` finds the key inputs a
    /// stage last ran or was restored with (from run records).
    public func status(previous: (String) -> RunRecord.StageRecord?) -> [StageStatus] {
        let chosen = Set(selected)
        var stale: Set<Int> = []
        var upstream: [String: UpstreamOutput] = [:]
        var report: [StageStatus] = []
        for i in selected {
            let stage = recipe.stages[i]
            let before = dependencies(of: i, in: chosen).filter(stale.contains).map { recipe.stages[$0].name }
            if !before.isEmpty {
                stale.insert(i)
                report.append(StageStatus(stage: stage.name, state: .stale, reasons: ["it needs \(before.joined(separator: ", ")), which \(before.count == 1 ? "is" : "are") stale"]))
                continue
            }
            let inputs: ActionKeyInputs
            do throws(EngineError) {
                inputs = try executor.planner.keyInputs(for: stage, in: recipe, upstream: upstream)
            } catch {
                stale.insert(i)
                report.append(StageStatus(stage: stage.name, state: .stale, reasons: [error.message]))
                continue
            }
            let key = inputs.key
            if let cached = executor.cachedResult(key) {
                Self.record(StageOutcome(stage: stage.name, status: .cached, key: key, result: cached), stage, into: &upstream)
                let changed = stage.outputs.filter { output in
                    let path = WorkspaceFiles.join(executor.workspace, output.path)
                    guard let tree = cached.outputTrees[output.description], WorkspaceFiles.existsNoFollow(path) else { return true }
                    return (try? TreeHasher.digest(of: path, cache: executor.planner.statCache).digest) != tree
                }
                report.append(changed.isEmpty
                    ? StageStatus(stage: stage.name, state: .upToDate, reasons: [], key: key)
                    : StageStatus(stage: stage.name, state: .outputsChanged,
                                  reasons: changed.map { "output \($0.description) differs from the cached one or is missing (kiln run restores it)" }, key: key))
                continue
            }
            stale.insert(i)
            let reasons = previous(stage.name).map { Self.reasons(now: inputs, before: $0) } ?? []
            report.append(StageStatus(stage: stage.name, state: .stale,
                                      reasons: reasons.isEmpty ? [previous(stage.name) == nil ? "never run" : "not in the cache (removed by gc, or run with other inputs)"] : reasons,
                                      key: key))
        }
        return report
    }

    /// Why the key inputs `now` differ from a recorded stage's.
    static func reasons(now: ActionKeyInputs, before: RunRecord.StageRecord) -> [String] {
        var out: [String] = []
        var was: [String: String] = [:]
        for s in before.inputs ?? [] { was[s.path] = (s.tree ?? s.archive)?.description }
        var isNow: [String: String] = [:]
        for s in now.sources { isNow[s.path] = (s.tree ?? s.archive)?.description }
        for path in Set(was.keys).union(isNow.keys).sorted() where was[path] != isNow[path] {
            out.append(was[path] == nil ? "input \(path) is new" : isNow[path] == nil ? "input \(path) is gone" : "input \(path) changed")
        }
        let params = before.params ?? [:]
        for name in Set(params.keys).union(now.params.keys).sorted() where params[name] != now.params[name] {
            out.append("param \(name): \(Self.plain(params[name])) → \(Self.plain(now.params[name]))")
        }
        let env = before.env ?? [:]
        for name in Set(env.keys).union(now.environment.keys).sorted() where env[name] != now.environment[name] {
            out.append("env \(name): \(env[name] ?? "(unset)") → \(now.environment[name] ?? "(unset)")")
        }
        if let argv = before.argv, argv != now.argv { out.append("command changed: \(now.argv.last ?? "")") }
        if let image = before.image, image != now.image {
            out.append(image.hasPrefix("host:") && now.image.hasPrefix("host:")
                ? "the host toolchain changed (packages or os-release): \(image.dropFirst(5).prefix(19)) → \(now.image.dropFirst(5).prefix(19))"
                : "image \(image) → \(now.image)")
        }
        if let sandbox = before.sandbox, sandbox != now.sandboxProfile { out.append("sandbox profile \(sandbox) → \(now.sandboxProfile)") }
        if let cpus = before.cpus, cpus != now.cpus { out.append("cpus \(cpus) → \(now.cpus)") }
        if let network = before.network, network != now.network { out.append("network \(network) → \(now.network)") }
        let outputs = (before.outputs ?? [:]).keys.sorted()
        if before.status != "failed", !outputs.isEmpty, outputs != now.outputs.sorted() {
            out.append("outputs \(outputs.joined(separator: ", ")) → \(now.outputs.sorted().joined(separator: ", "))")
        }
        return out
    }

    static func plain(_ typed: String?) -> String {
        guard let typed else { return "(unset)" }
        return typed.split(separator: ":", maxSplits: 1).last.map(String.init) ?? typed
    }
}

extension RunCatalog {
    /// For `kiln status`: the newest recorded key inputs of each stage of `recipe` that ran or
    /// was restored.
    public func lastRecorded(recipe: String) -> [String: RunRecord.StageRecord] {
        // Newest runs first, reading only the details of stages not found yet.
        var out: [String: RunRecord.StageRecord] = [:]
        for entry in list(details: false) where entry.record.recipe.name == recipe {
            for var s in entry.record.stages where out[s.name] == nil && (s.status == "ran" || s.status == "cached") {
                guard let d = s.detail, let bytes = try? store.read(d), let detail = RunRecord.decodeDetail(bytes) else { continue }
                s.merge(detail)
                out[s.name] = s
            }
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#endif
import KilnImage
import KilnRecipe
import KilnStore

/// Rebuilds recorded stages from a run record alone and compares their outputs with the record,
/// byte for byte (`kiln replay`, and each round of `kiln verify`).
///
/// The recipe is parsed again from the record's text with the recorded overrides; each stage runs
/// in the sandbox exactly as `kiln run` would (same executor), in a scratch workspace holding
/// only what the record names: before a stage runs, each of its inputs is extracted from the
/// archive the record gives it (a rebuilt upstream output is replaced by the recorded one when
/// they differ, so every stage is judged on the recorded inputs). The action cache is neither
/// read nor written.
public struct Replayer: Sendable {
    public let store: Store
    /// The current host's fingerprint (a recorded `host:` image that differs is host drift).
    public let hostFingerprint: Digest

    public init(store: Store, hostFingerprint: Digest) {
        self.store = store
        self.hostFingerprint = hostFingerprint
    }

    /// What `verify` varies between rounds, from outside the sandbox.
    public struct Variation: Sendable {
        /// Extract inputs in reverse order.
        public var reverseInputOrder = false
        /// Give every extracted input file this mtime and atime (seconds since the epoch).
        public var inputTime: Int64?
        /// kiln's umask while the round runs.
        public var umask: mode_t?
        public init(reverseInputOrder: Bool = false, inputTime: Int64? = nil, umask: mode_t? = nil) {
            self.reverseInputOrder = reverseInputOrder
            self.inputTime = inputTime
            self.umask = umask
        }
    }

    public struct OutputCheck: Sendable, Encodable {
        public var path: String
        public var recorded: Digest
        public var rebuilt: Digest?
        public var identical: Bool { rebuilt == recorded }
        /// For a differing output: the files inside it that differ.
        public var files: [FileDifference] = []
        /// diffoscope's report on the differing output, where diffoscope is installed.
        public var diffoscope: String?

        enum CodingKeys: String, CodingKey { case path, recorded, rebuilt, identical, files, diffoscope }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(path, forKey: .path)
            try c.encode(recorded, forKey: .recorded)
            try c.encodeIfPresent(rebuilt, forKey: .rebuilt)
            try c.encode(identical, forKey: .identical)
            try c.encode(files, forKey: .files)
            try c.encodeIfPresent(diffoscope, forKey: .diffoscope)
        }
    }

    public struct StageCheck: Sendable, Encodable {
        public var stage: String
        /// `identical`, `differs` or `failed` (the stage could not be rebuilt).
        public var status: String
        public var reason: String?
        public var outputs: [OutputCheck]
        /// Why the rebuilt stage's key differs from the recorded one (host drift, kiln version).
        public var keyDrift: [String]
        public var seconds: Double
    }

    /// Stages of `record` to rebuild, in record (topological) order: `names`, or every stage that
    /// ran or was restored. A named stage that has no outputs in the record is an error.
    public static func stages(of record: RunRecord, named names: [String]) throws(EngineError) -> [RunRecord.StageRecord] {
        let usable = record.stages.filter { $0.outputs != nil && $0.argv != nil }
        guard !names.isEmpty else { return usable }
        for name in names where !usable.contains(where: { $0.name == name }) {
            let known = usable.map(\.name).joined(separator: ", ")
            throw EngineError(.unknownRun, record.stage(name) == nil
                ? "the run has no stage '\(name)'; its stages: \(record.stages.map(\.name).joined(separator: ", "))."
                : "stage '\(name)' did not succeed in that run, so there is nothing to compare; stages with outputs: \(known).")
        }
        return usable.filter { names.contains($0.name) }
    }

    /// The stages whose outputs lead to `archive` (it and everything upstream), in record order.
    public static func stages(of record: RunRecord, producing archive: Digest) -> [RunRecord.StageRecord] {
        var producer: [Digest: String] = [:]
        for s in record.stages { for o in (s.outputs ?? [:]).values { producer[o.archive] = s.name } }
        guard let target = producer[archive] else { return [] }
        var needed: Set<String> = [target]
        for s in record.stages.reversed() where needed.contains(s.name) {
            for i in s.inputs ?? [] { if let a = i.archive, let p = producer[a] { needed.insert(p) } }
        }
        return record.stages.filter { needed.contains($0.name) && $0.outputs != nil }
    }

    /// The recorded host facts that differ from this machine's, when any stage used the host
    /// toolchain and its fingerprint differs (empty: no drift).
    public func hostDrift(_ record: RunRecord, stages: [RunRecord.StageRecord], kilnVersion: String) -> [String] {
        let usesHost = stages.contains { $0.image?.hasPrefix("host:") == true }
        guard usesHost, record.host.fingerprint != hostFingerprint else { return [] }
        let now = HostFacts.current(kilnVersion: kilnVersion, fingerprint: hostFingerprint)
        var out = ["host toolchain fingerprint: \(record.host.fingerprint) → \(hostFingerprint) (packages or os-release differ)"]
        out += RunDiff.compare(RunDiff.facts(record.host), RunDiff.facts(now), stage: nil)
            .filter { $0.name != "fingerprint" }
            .map { "\($0.name): \($0.a ?? "-") → \($0.b ?? "-")" }
        return out
    }

    /// Rebuilds `stages` of `record` in `scratch` (an empty folder) and compares their outputs.
    /// `progress` hears of each stage as it starts.
    public func replay(_ record: RunRecord, stages: [RunRecord.StageRecord], in scratch: String, variation: Variation = .init(),
                       progress: (String) -> Void = { _ in }) async throws(EngineError) -> [StageCheck] {
        let recipe: Recipe
        do {
            let overrides = record.overrides.compactMap(ParamOverride.parse)
            recipe = try Recipe(parsing: Array(record.recipe.text.utf8), file: record.recipe.file, overrides: overrides) { _ in true }
        } catch {
            throw EngineError(.badRecord, "the recipe text in the record no longer parses with this kiln: \(error.errors.first?.description ?? "invalid"). Replay it with the kiln version that recorded it (\(record.host.kilnVersion)).")
        }
        let previousUmask = variation.umask.map { umask($0) }
        defer { if let previousUmask { umask(previousUmask) } }

        let statCache = StatCache(path: WorkspaceFiles.join(scratch, ".kiln-statcache"))
        // Pinned images come from the record (archive and image record), not from this cache's names.
        var pinned: [ResolvedImage] = []
        for use in record.images ?? [] {
            guard store.contains(use.archive) else {
                throw EngineError(.missingImage, "the run used image \(use.name.map { "\($0)@" } ?? "")\(use.archive), which is not in the cache at \(store.root). Bring it with `kiln import BUNDLE` (kiln export carries it) or `kiln image import SOURCE --name \(use.name ?? "NAME")`.")
            }
            let imageRecord = use.record.flatMap { try? store.read($0) }.flatMap(ImageRecord.decode)
            pinned.append(ResolvedImage(name: use.name, digest: use.archive, record: imageRecord, recordDigest: use.record))
        }
        let planner = Planner(workspace: scratch, statCache: statCache, hostFingerprint: hostFingerprint, image: recipe.image,
                              pinnedImages: pinned, excluded: [".kiln-statcache"])
        let executor = Executor(workspace: scratch, store: store, planner: planner, noCache: true, storesActionResults: false)
        var present: [String: Digest] = [:]  // workspace path → archive it now holds
        var checks: [StageCheck] = []
        for recorded in stages {
            progress(recorded.name)
            let start = ContinuousClock.now
            guard let stage = recipe.stage(named: recorded.name) else {
                checks.append(StageCheck(stage: recorded.name, status: "failed", reason: "the recipe text in the record has no stage '\(recorded.name)'", outputs: [], keyDrift: [], seconds: 0))
                continue
            }
            var sources = recorded.inputs ?? []
            if variation.reverseInputOrder { sources.reverse() }
            var upstream: [String: UpstreamOutput] = [:]
            for source in sources {
                guard let archive = source.archive else {
                    throw EngineError(.badRecord, "the record names no archive for input \(source.path) of stage '\(recorded.name)'; it was recorded before inputs were kept. It cannot be replayed.")
                }
                if present[source.path] != archive {
                    try place(archive, kind: source.kind, at: source.path, in: scratch, stage: recorded.name)
                    present[source.path] = archive
                }
                if let t = variation.inputTime { Self.touch(WorkspaceFiles.join(scratch, source.path), t) }
                if source.tree == nil { upstream[source.path] = UpstreamOutput(archive: archive, kind: source.kind) }
            }
            // Upstream outputs are keyed by their declared spelling (`data/`); map from the path.
            var keyedUpstream: [String: UpstreamOutput] = [:]
            for input in stage.inputs { if let up = upstream[input.path] { keyedUpstream[input.description] = up } }
            var drift: [String] = []
            let key: Digest
            do throws(EngineError) {
                let inputs = try planner.keyInputs(for: stage, in: recipe, upstream: keyedUpstream)
                key = inputs.key
                if key != recorded.key { drift = Pipeline.reasons(now: inputs, before: recorded) }
            } catch {
                checks.append(StageCheck(stage: recorded.name, status: "failed", reason: error.message, outputs: [], keyDrift: [], seconds: Self.seconds(since: start)))
                continue
            }
            let ran: StageOutcome?
            do throws(EngineError) { ran = try await executor.runInSandbox(stage, key: key, output: { _, _ in }) } catch {
                checks.append(StageCheck(stage: recorded.name, status: "failed", reason: error.message, outputs: [], keyDrift: drift, seconds: Self.seconds(since: start)))
                continue
            }
            guard let outcome = ran else { throw EngineError(.io, "interrupted") }
            guard outcome.status == .ran, let result = outcome.result else {
                checks.append(StageCheck(stage: recorded.name, status: "failed", reason: outcome.reason ?? "it failed", outputs: [], keyDrift: drift, seconds: Self.seconds(since: start)))
                continue
            }
            var outputs: [OutputCheck] = []
            for (path, out) in (recorded.outputs ?? [:]).sorted(by: { $0.key < $1.key }) {
                var check = OutputCheck(path: path, recorded: out.archive, rebuilt: result.outputs[path])
                if let rebuilt = check.rebuilt, rebuilt != out.archive {
                    (check.files, check.diffoscope) = compare(recorded: out.archive, rebuilt: rebuilt, kind: out.kind, path: path)
                }
                outputs.append(check)
                let plain = path.hasSuffix("/") ? String(path.dropLast()) : path
                if let rebuilt = check.rebuilt { present[plain] = rebuilt }
            }
            checks.append(StageCheck(stage: recorded.name, status: outputs.allSatisfy(\.identical) ? "identical" : "differs",
                                     outputs: outputs, keyDrift: drift, seconds: Self.seconds(since: start)))
        }
        return checks
    }

    /// Extracts `archive` (an output or input archive of `kind`) to `path` in `workspace`,
    /// replacing what is there.
    func place(_ archive: Digest, kind: String, at path: String, in workspace: String, stage: String) throws(EngineError) {
        let target = WorkspaceFiles.join(workspace, path)
        let parent = WorkspaceFiles.parent(target)
        try WorkspaceFiles.makeDirectories(parent)
        let staging = WorkspaceFiles.join(parent, ".kiln-replay-\(UInt64.random(in: 0...UInt64.max))")
        do {
            _ = try SafeExtractor().extract(blob: archive, from: store, to: staging)
        } catch {
            try? WorkspaceFiles.remove(staging)
            throw EngineError(.badRecord, "cannot rebuild input \(path) of stage '\(stage)' from \(archive): \(error.message)")
        }
        try WorkspaceFiles.remove(target)
        if kind == "dir" {
            try WorkspaceFiles.move(staging, to: target)
        } else {
            let base = path.split(separator: "/").last.map(String.init) ?? path
            try WorkspaceFiles.move(WorkspaceFiles.join(staging, base), to: target)
            try WorkspaceFiles.remove(staging)
        }
    }

    /// The files that differ between two archives of one output, and diffoscope's view of the
    /// first few where it is installed.
    func compare(recorded: Digest, rebuilt: Digest, kind: String, path: String) -> ([FileDifference], String?) {
        let tmp = WorkspaceFiles.join(store.tmpDirectory, "compare.\(getpid()).\(UInt64.random(in: 0...UInt64.max))")
        defer { try? WorkspaceFiles.remove(tmp) }
        let a = WorkspaceFiles.join(tmp, "recorded"), b = WorkspaceFiles.join(tmp, "rebuilt")
        guard (try? WorkspaceFiles.makeDirectories(tmp)) != nil,
              (try? SafeExtractor().extract(blob: recorded, from: store, to: a)) != nil,
              (try? SafeExtractor().extract(blob: rebuilt, from: store, to: b)) != nil else {
            return ([FileDifference(path: path, change: "the recorded archive \(recorded) is not in the cache to compare with")], nil)
        }
        let prefix = kind == "dir" ? (path.hasSuffix("/") ? path : path + "/") : ""
        let differences = TreeComparison.compare(a, b).map { FileDifference(path: prefix + $0.path, change: $0.change) }
        let report = Diffoscope.report(a, b)
        return (differences, report)
    }

    static func touch(_ path: String, _ seconds: Int64) {
        var times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        if WorkspaceFiles.isRealDirectory(path) {
            WorkspaceFiles.walk(root: path, start: "", skip: { _ in false }) { rel, _ in
                _ = utimensat(AT_FDCWD, WorkspaceFiles.join(path, rel), &times, AT_SYMLINK_NOFOLLOW)
            }
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// One file that differs between two trees.
public struct FileDifference: Sendable, Encodable, Equatable {
    public var path: String
    /// `content differs`, `only in the record`, `only in the rebuild`, `type differs`, `mode differs`.
    public var change: String
}

import KilnImage
import KilnRecipe
import KilnSandbox
import KilnStore

/// What a stage's action key is computed from (DESIGN.md, Identity). Its canonical JSON (sorted
/// keys, no spaces, every value a string) is hashed with SHA-256; `keyFormat` changes whenever
/// this layout does, so old keys miss instead of colliding.
public struct ActionKeyInputs: Sendable, Equatable {
    public static let keyFormat = "kiln-action-1"

    public var argv: [String]
    /// The full environment: sandbox defaults, then the recipe's and the stage's env.
    public var environment: [String: String]
    /// `host:sha256:…` (the host fingerprint) or the pinned image's archive digest `sha256:…`
    /// (its name is left out: renaming an image changes nothing a stage sees).
    public var image: String
    public var sandboxProfile: String
    /// Declared input (as written, `data/`) → digest; a glob → its matches → digests.
    public var inputs: [String: CanonicalJSON]
    /// Used params, each in its canonical text form with its type (`int:10`, `double:0.1`).
    public var params: [String: String]
    /// Declared outputs as written (`data/`, `model.pkl`).
    public var outputs: [String]
    public var cpus: Int
    /// The network mode (a stage with the host's network may see different things).
    public var network: String
    /// Every file or folder the inputs resolved to, for the run record (not part of the key:
    /// `inputs` already holds their digests).
    public var sources: [InputSource] = []

    public var canonicalJSON: CanonicalJSON {
        .object([
            "format": .string(Self.keyFormat),
            "argv": .array(argv.map { .string($0) }),
            "env": .object(environment.mapValues { .string($0) }),
            "image": .string(image),
            "sandbox": .string(sandboxProfile),
            "inputs": .object(inputs),
            "params": .object(params.mapValues { .string($0) }),
            "outputs": .array(outputs.map { .string($0) }),
            "cpus": .string(String(cpus)),
            "network": .string(network),
        ])
    }

    /// The action key: SHA-256 of the canonical JSON.
    public var key: Digest { Digest.of(canonicalJSON.bytes) }
}

/// One path a stage reads, as resolved when its key was computed.
public struct InputSource: Sendable, Equatable, Codable {
    /// Workspace-relative, glob matches expanded.
    public var path: String
    /// `file`, `dir` or `symlink`.
    public var kind: String
    /// The tree digest of a workspace input (nil for an upstream stage's output).
    public var tree: Digest?
    /// The archive holding it: an upstream output's archive, or (filled by `InputArchiver`) the
    /// workspace input's archive, so a replay can rebuild the input without the workspace.
    public var archive: Digest?

    public init(path: String, kind: String, tree: Digest?, archive: Digest?) {
        self.path = path
        self.kind = kind
        self.tree = tree
        self.archive = archive
    }
}

/// An upstream stage's output as its dependents see it.
public struct UpstreamOutput: Sendable, Equatable {
    public var archive: Digest
    /// `file` or `dir` (ActionResult.outputKinds).
    public var kind: String

    public init(archive: Digest, kind: String) {
        self.archive = archive
        self.kind = kind
    }
}

/// Computes action keys. Inputs are hashed through the stat cache; an input that is exactly an
/// upstream stage's output uses that output's archive digest (so byte-identical rebuilt outputs
/// give the same downstream key: early cutoff).
public struct Planner: Sendable {
    public let workspace: String
    public let statCache: StatCache
    /// The host fingerprint for `image: host`.
    public let hostFingerprint: Digest
    /// Paths (relative to the workspace) never walked when expanding globs: the cache, staging.
    public let excluded: [String]
    /// The recipe's image (a stage's own `image:` overrides it).
    public let recipeImage: ImageReference
    /// The pinned images found in the cache (`ImageResolution.resolve`), with their records' Env.
    /// The executor refuses a stage whose pinned image is not among them.
    public let pinnedImages: [ResolvedImage]

    public init(workspace: String, statCache: StatCache, hostFingerprint: Digest, image: ImageReference = .host,
                pinnedImages: [ResolvedImage] = [], excluded: [String] = []) {
        self.recipeImage = image
        self.pinnedImages = pinnedImages
        self.workspace = workspace
        self.statCache = statCache
        self.hostFingerprint = hostFingerprint
        self.excluded = excluded
    }

    /// The environment a stage runs with on the host's toolchain (and its key holds).
    public static func environment(for stage: Stage) -> [String: String] {
        SandboxSpec.defaultEnvironment(cpus: stage.cpus).merging(stage.env) { _, mine in mine }
    }

    /// The image `stage` runs on: its own `image:`, else the recipe's.
    public func image(for stage: Stage) -> ImageReference { stage.image ?? recipeImage }

    /// The resolved pinned image `stage` runs on, if it runs on one that was resolved.
    public func pinnedImage(for stage: Stage) -> ResolvedImage? {
        guard case .pinned(_, let digest) = image(for: stage) else { return nil }
        return pinnedImages.first { $0.digest == digest }
    }

    /// The environment a stage runs with (and its key holds): the sandbox defaults, then the
    /// pinned image's Env (its PATH wins over the default one), then the recipe's and the stage's.
    public func environment(for stage: Stage) -> [String: String] {
        guard let imageEnv = pinnedImage(for: stage)?.record?.environment, !imageEnv.isEmpty else { return Self.environment(for: stage) }
        return SandboxSpec.defaultEnvironment(cpus: stage.cpus).merging(imageEnv) { _, image in image }
            .merging(stage.env) { _, mine in mine }
    }

    /// The key inputs of `stage`; `upstream` maps an upstream output (as declared, `data/`) to
    /// its archive digest.
    public func keyInputs(for stage: Stage, in recipe: Recipe, upstream: [String: UpstreamOutput]) throws(EngineError) -> ActionKeyInputs {
        var inputs: [String: CanonicalJSON] = [:]
        var sources: [InputSource] = []
        func hashed(_ path: String) throws(EngineError) -> Digest {
            let (digest, kind) = try hash(path, stage: stage)
            sources.append(InputSource(path: path, kind: kind, tree: digest, archive: nil))
            return digest
        }
        for input in stage.inputs {
            if input.isGlob {
                var matches: [String: CanonicalJSON] = [:]
                for path in expand(input) { matches[path] = .string(try hashed(path).description) }
                inputs[input.description] = .object(matches)
            } else if let up = upstream[input.description] {
                inputs[input.description] = .string(up.archive.description)
                sources.append(InputSource(path: input.path, kind: up.kind, tree: nil, archive: up.archive))
            } else {
                inputs[input.description] = .string(try hashed(input.path).description)
            }
        }
        var params: [String: String] = [:]
        for (name, value) in recipe.paramValues(for: stage) { params[name] = Self.typed(value) }
        let image: String
        switch recipe.image(for: stage) {
        case .host: image = "host:\(hostFingerprint)"
        case .pinned(_, let digest): image = digest.description
        }
        return ActionKeyInputs(
            argv: stage.argv, environment: environment(for: stage), image: image,
            sandboxProfile: SeccompProfile.version, inputs: inputs, params: params,
            outputs: stage.outputs.map(\.description), cpus: stage.cpus, network: stage.network.rawValue,
            sources: sources)
    }

    static func typed(_ value: ParamValue) -> String {
        switch value {
        case .int: return "int:\(value)"
        case .double: return "double:\(value)"
        case .string: return "string:\(value)"
        case .bool: return "bool:\(value)"
        }
    }

    func hash(_ path: String, stage: Stage) throws(EngineError) -> (digest: Digest, kind: String) {
        let full = WorkspaceFiles.join(workspace, path)
        guard WorkspaceFiles.exists(full) else {
            throw EngineError(.missingInput, "stage '\(stage.name)': its input \(path) does not exist in the workspace \(workspace). Create it, or declare a stage that outputs it.")
        }
        do {
            let (digest, kind) = try TreeHasher.digest(of: full, cache: statCache)
            return (digest, kind == .directory ? "dir" : kind == .symlink ? "symlink" : "file")
        }
        catch { throw EngineError(.store, "stage '\(stage.name)': cannot hash its input \(path): \(error.message)") }
    }

    /// The workspace files (and symlinks) a glob input matches, sorted, walked from the glob's
    /// literal folder; the cache and dot-folders are not searched.
    public func expand(_ input: WorkspacePath) -> [String] {
        let literal = input.path.prefix { $0 != "*" && $0 != "?" && $0 != "[" }
        let start = literal.contains("/") ? String(literal[..<literal.lastIndex(of: "/")!]) : ""
        guard start.isEmpty || WorkspaceFiles.isRealDirectory(WorkspaceFiles.join(workspace, start)) else { return [] }
        var found: [String] = []
        WorkspaceFiles.walk(root: workspace, start: start, skip: { rel in
            excluded.contains(rel) || rel.split(separator: "/").last?.hasPrefix(".") == true
        }) { rel, isDir in
            if !isDir && input.matches(rel) { found.append(rel) }
        }
        return found.sorted()
    }
}

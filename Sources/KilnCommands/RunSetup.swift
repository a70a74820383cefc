import ArgumentParser
import FoundationEssentials
import KilnEngine
import KilnImage
import KilnRecipe
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

/// `kiln run`'s start: finding the workspace and the recipe, and loading it.
enum RunSetup {
    static func environment() -> [String: String] {
        getenv("KILN_CACHE").map { ["KILN_CACHE": String(cString: $0)] } ?? [:]
    }

    /// The variables that decide a run's trigger (RunRecorder.trigger).
    static func processEnvironment() -> [String: String] {
        var out: [String: String] = [:]
        for name in ["KILN_TRIGGER", "GITHUB_ACTIONS", "CI"] {
            if let v = getenv(name) { out[name] = String(cString: v) }
        }
        return out
    }

    static func cores() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// `--workspace`, else the nearest folder holding recipes/.
    static func workspace(_ option: String?) throws -> String {
        if let option {
            let ws = absolute(option)
            guard FileManager.default.fileExists(atPath: ws + "/recipes") else {
                storeErrorLine("kiln: --workspace \(option) has no recipes/ folder. Give the folder that holds recipes/.")
                throw ExitCode(KilnExitCode.recipeInvalid)
            }
            return ws
        }
        let cwd = FileManager.default.currentDirectoryPath
        guard let ws = CacheLocation.workspace(from: cwd) else {
            storeErrorLine("kiln: no workspace: neither \(cwd) nor a folder above it holds recipes/. Run kiln in a workspace, or pass --workspace DIR.")
            throw ExitCode(KilnExitCode.recipeInvalid)
        }
        return ws
    }

    /// The recipes in recipes/ (workspace-relative paths), sorted.
    static func recipes(in ws: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: ws + "/recipes")) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "recipes/" + $0 }
    }

    /// Splits `kiln run`'s words into the recipe file (absolute) and the stage names: the first word
    /// is the recipe if it is a file or names one in recipes/; otherwise the workspace's only recipe.
    static func recipeFile(_ names: [String], workspace ws: String) throws -> (String, [String]) {
        if let first = names.first {
            let candidates = first.hasSuffix(".yaml") || first.hasSuffix(".yml") || first.contains("/")
                ? [absolute(first)] : [ws + "/recipes/\(first).yaml", ws + "/recipes/\(first).yml"]
            if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) {
                return (found, Array(names.dropFirst()))
            }
            if candidates.count == 1 {
                storeErrorLine("kiln: the recipe \(first) does not exist.")
                throw ExitCode(KilnExitCode.recipeInvalid)
            }
        }
        let all = recipes(in: ws)
        guard all.count == 1 else {
            storeErrorLine(all.isEmpty
                ? "kiln: \(ws)/recipes has no recipe (NAME.yaml). Write one, such as recipes/train.yaml."
                : "kiln: the workspace has \(all.count) recipes (\(all.joined(separator: ", "))); name one, such as 'kiln run \(all[0].dropFirst(8).split(separator: ".")[0])'.")
            throw ExitCode(KilnExitCode.recipeInvalid)
        }
        return (ws + "/" + all[0], names)
    }

    /// `path` relative to `base`, if inside it.
    static func relative(_ path: String, to base: String) -> String? {
        let full = absolute(path)
        return full.hasPrefix(base + "/") ? String(full.dropFirst(base.count + 1)) : nil
    }

    /// Reads and validates the recipe; errors print as `file:line:col: error: …` and exit 78.
    static func load(_ file: String, workspace ws: String, params: [(name: String, value: String)]) throws -> Recipe {
        try loadWithText(file, workspace: ws, params: params).recipe
    }

    /// The recipe and the text it was parsed from (for the run record).
    static func loadWithText(_ file: String, workspace ws: String, params: [(name: String, value: String)]) throws -> (recipe: Recipe, text: String) {
        let shown = relative(file, to: ws) ?? file
        guard let data = FileManager.default.contents(atPath: file) else {
            storeErrorLine("kiln: cannot read the recipe \(shown).")
            throw ExitCode(KilnExitCode.recipeInvalid)
        }
        do {
            let recipe = try Recipe(parsing: Array(data), file: shown, overrides: params) { path in
                FileManager.default.fileExists(atPath: ws + "/" + path)
            }
            return (recipe, String(decoding: data, as: UTF8.self))
        } catch {
            for e in error.errors { storeErrorLine(e.description) }
            throw ExitCode(KilnExitCode.recipeInvalid)
        }
    }
}

/// What `kiln run` and `kiln status` both start from: the workspace, the recipe and its selected
/// stages, the cache, and a planner over them. Errors are printed and become exit codes.
struct PipelineSetup {
    let workspace: String
    let recipe: Recipe
    let recipeText: String
    let stageNames: [String]
    let selected: [Stage]
    let store: Store
    let statCache: StatCache
    let fingerprint: Digest
    let planner: Planner

    init(names: [String], params: [String], cache: String?, workspace option: String?) throws {
        let ws = try RunSetup.workspace(option)
        workspace = ws
        let (file, stageNames) = try RunSetup.recipeFile(names, workspace: ws)
        self.stageNames = stageNames
        (recipe, recipeText) = try RunSetup.loadWithText(file, workspace: ws, params: params.compactMap(ParamOverride.parse))
        do { selected = try recipe.select(stageNames) } catch {
            storeErrorLine("kiln: \(error.description)")
            throw ExitCode(KilnExitCode.usage)
        }
        let location = CacheLocation.resolve(option: cache, environment: RunSetup.environment(), currentDirectory: ws)
        do { store = try Store(root: location.path) } catch {
            storeErrorLine("kiln: \(error.message)")
            throw ExitCode(storeExitCode(for: error))
        }
        statCache = StatCache(path: store.statCachePath)
        let cacheRelative = RunSetup.relative(location.path, to: ws)
        let shown = RunSetup.relative(file, to: ws) ?? file
        if let build = recipe.imageBuild, !build.isLocked {
            storeErrorLine("kiln: \(shown): its image (build: from \(build.from)) is not locked to a digest yet, so nothing ran. Run `kiln image lock \(shown)`: it builds the image and writes `pinned: \(build.name)@sha256:…` into the recipe.")
            throw ExitCode(KilnExitCode.recipeInvalid)
        }
        // Every pinned image the selected stages use must be in the cache before anything runs.
        let pinnedImages: [ResolvedImage]
        do throws(EngineError) { pinnedImages = try ImageResolution.resolve(recipe, stages: selected, store: store, shown: shown) } catch {
            storeErrorLine("kiln: \(error.message)")
            throw ExitCode(KilnExitCode.recipeInvalid)
        }
        fingerprint = HostFingerprint.compute(cache: statCache)
        planner = Planner(workspace: ws, statCache: statCache, hostFingerprint: fingerprint,
                          image: recipe.image, pinnedImages: pinnedImages, excluded: cacheRelative.map { [$0] } ?? [])
    }
}

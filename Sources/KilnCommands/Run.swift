import ArgumentParser
import FoundationEssentials
import KilnEngine
import KilnImage
import KilnRecipe
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln {
    /// `kiln run [RECIPE] [STAGE...]`: runs a pipeline, restoring unchanged stages from the cache.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Run a recipe's stages, restoring unchanged ones from the cache.",
            discussion: """
                RECIPE is a path or a name in recipes/ (recipes/NAME.yaml); it may be omitted when the \
                workspace has one recipe. Naming stages runs them and the stages they need. Every stage \
                runs in the sandbox with the workspace at /work, seeing only its declared inputs; its \
                outputs are stored as deterministic archives, keyed by everything the stage sees, so a \
                stage whose inputs are unchanged is restored instead of run. Declared output folders \
                exist, empty, when a stage starts; writing anywhere else in /work fails the stage.

                Exit codes: 0 when every stage succeeded and every gate passed; \
                \(KilnExitCode.stageFailed) when a stage failed; \(KilnExitCode.gateFailed) when a gate \
                failed; \(KilnExitCode.recipeInvalid) when the recipe is invalid or missing; \
                \(KilnExitCode.usage) for usage errors; \(KilnExitCode.ioError) for cache I/O errors.
                """)

        @Argument(help: ArgumentHelp("The recipe (a path or a name in recipes/), then the stages to run (default: all).", valueName: "recipe-and-stages"))
        var names: [String] = []

        @Option(name: .customShort("p"), help: ArgumentHelp("Override a param (repeatable).", valueName: "NAME=VALUE"))
        var params: [String] = []

        @Option(name: .customShort("j"), help: ArgumentHelp("Stages run at once (default: the number of cores).", valueName: "N"))
        var jobs: Int?

        @Flag(name: .customLong("no-cache"), help: "Run every stage even when cached (results are still stored).")
        var noCache = false

        @Flag(name: .customLong("keep-going"), help: "After a failure, still run the stages that do not depend on it.")
        var keepGoing = false

        @Flag(name: .customLong("dry-run"), help: "Say which stages would run and which are cached; run nothing.")
        var dryRun = false

        @Flag(name: .customLong("json"), help: "Print one JSON event per line instead of progress lines.")
        var json = false

        @Option(name: .customLong("cache"), help: ArgumentHelp("The cache directory (default: $KILN_CACHE, else cache/ in the workspace).", valueName: "dir"))
        var cache: String?

        @Option(name: .customLong("workspace"), help: ArgumentHelp("The workspace (default: the nearest folder above the current one holding recipes/).", valueName: "dir"))
        var workspace: String?

        func validate() throws {
            if let jobs, jobs < 1 { throw ValidationError("'-j' needs at least 1 stage at once; got \(jobs).") }
            for p in params where ParamOverride.parse(p) == nil {
                throw ValidationError("'-p \(p)' is not NAME=VALUE; write it like '-p C=10'.")
            }
            if let cache, cache.isEmpty { throw ValidationError("'--cache' needs a directory; got an empty string.") }
        }

        func run() async throws {
            let ws = try RunSetup.workspace(workspace)
            let (file, stageNames) = try RunSetup.recipeFile(names, workspace: ws)
            let recipe = try RunSetup.load(file, workspace: ws, params: params.compactMap(ParamOverride.parse))
            let selected: [Stage]
            do { selected = try recipe.select(stageNames) } catch {
                storeErrorLine("kiln: \(error.description)")
                throw ExitCode(KilnExitCode.usage)
            }
            let location = CacheLocation.resolve(option: cache, environment: RunSetup.environment(), currentDirectory: ws)
            let store: Store
            do { store = try Store(root: location.path) } catch {
                storeErrorLine("kiln: \(error.message)")
                throw ExitCode(storeExitCode(for: error))
            }
            let statCache = StatCache(path: store.statCachePath)
            let cacheRelative = RunSetup.relative(location.path, to: ws)
            if let build = recipe.imageBuild, !build.isLocked {
                let shown = RunSetup.relative(file, to: ws) ?? file
                storeErrorLine("kiln: \(shown): its image (build: from \(build.from)) is not locked to a digest yet, so nothing ran. Run `kiln image lock \(shown)`: it builds the image and writes `pinned: \(build.name)@sha256:…` into the recipe.")
                throw ExitCode(KilnExitCode.recipeInvalid)
            }
            let pinnedImages: [ResolvedImage]
            do { pinnedImages = try ImageResolution.resolve(recipe, stages: selected, store: store, shown: RunSetup.relative(file, to: ws) ?? file) } catch {
                storeErrorLine("kiln: \(error.message)")
                throw ExitCode(KilnExitCode.recipeInvalid)
            }
            let planner = Planner(workspace: ws, statCache: statCache, hostFingerprint: HostFingerprint.compute(cache: statCache),
                                  image: recipe.image, pinnedImages: pinnedImages, excluded: cacheRelative.map { [$0] } ?? [])
            let executor = Executor(workspace: ws, store: store, planner: planner, noCache: noCache)
            let pipeline = Pipeline(recipe: recipe, stages: selected, executor: executor)
            let printer = RunPrinter(json: json)
            let started = ContinuousClock.now
            let summary = await pipeline.run(
                PipelineOptions(jobs: jobs ?? RunSetup.cores(), keepGoing: keepGoing, dryRun: dryRun),
                events: { printer.event($0) })
            try? statCache.save(tmpDirectory: store.tmpDirectory)
            printer.summary(summary, seconds: RunPrinter.seconds(ContinuousClock.now - started), dryRun: dryRun)
            if summary.stageFailed { throw ExitCode(KilnExitCode.stageFailed) }
            if summary.gateFailed { throw ExitCode(KilnExitCode.gateFailed) }
        }
    }
}

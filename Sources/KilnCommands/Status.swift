import ArgumentParser
import KilnEngine
import KilnRecipe
import KilnStore

extension Kiln {
    /// `kiln status [RECIPE] [STAGE...]`: which stages are up to date, and why the others are not.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Say which stages are up to date and why the others are stale, without running anything.",
            discussion: """
                A stage is up to date when its action key (everything it sees: command, env, inputs, \
                params, image or host toolchain) is in the cache and the workspace holds its outputs as \
                cached. For a stale stage, kiln compares its key inputs with those of the newest recorded \
                run that ran or restored it and names what changed: an input, a param, the env, the \
                command, the image or host toolchain. Stages after a stale one are stale too.

                Exit codes: 0, or with --exit-code, 1 when any stage is not up to date; \
                \(KilnExitCode.recipeInvalid) when the recipe is invalid.
                """)

        @Argument(help: ArgumentHelp("The recipe (a path or a name in recipes/), then the stages (default: all).", valueName: "recipe-and-stages"))
        var names: [String] = []

        @Option(name: .customShort("p"), help: ArgumentHelp("Override a param as `kiln run -p` would (repeatable).", valueName: "NAME=VALUE"))
        var params: [String] = []

        @Flag(name: .customLong("json"), help: "Print a JSON array of {stage, state, reasons, key}.")
        var json = false

        @Flag(name: .customLong("exit-code"), help: "Exit 1 when any stage is not up to date (for CI).")
        var exitCode = false

        @Option(name: .customLong("cache"), help: ArgumentHelp("The cache directory (default: $KILN_CACHE, else cache/ in the workspace).", valueName: "dir"))
        var cache: String?

        @Option(name: .customLong("workspace"), help: ArgumentHelp("The workspace (default: the nearest folder above the current one holding recipes/).", valueName: "dir"))
        var workspace: String?

        func validate() throws {
            for p in params where ParamOverride.parse(p) == nil {
                throw ValidationError("'-p \(p)' is not NAME=VALUE; write it like '-p C=10'.")
            }
        }

        func run() async throws {
            let setup = try PipelineSetup(names: names, params: params, cache: cache, workspace: workspace)
            let executor = Executor(workspace: setup.workspace, store: setup.store, planner: setup.planner)
            let pipeline = Pipeline(recipe: setup.recipe, stages: setup.selected, executor: executor)
            let previous = RunCatalog(store: setup.store).lastRecorded(recipe: setup.recipe.name)
            let report = pipeline.status { previous[$0] }
            try? setup.statCache.save(tmpDirectory: setup.store.tmpDirectory)
            if json {
                RecordSupport.printJSON(report)
            } else {
                for s in report {
                    switch s.state {
                    case .upToDate: storeOutputLine("up to date  \(s.stage)")
                    case .outputsChanged, .stale:
                        storeOutputLine("\(s.state == .stale ? "stale      " : "restorable ") \(s.stage)")
                        for r in s.reasons { storeOutputLine("              \(r)") }
                    }
                }
                let behind = report.filter { $0.state != .upToDate }.count
                storeOutputLine(behind == 0 ? "everything is up to date" : "\(behind) of \(report.count) stages not up to date: kiln run \(setup.recipe.name)")
            }
            if exitCode && report.contains(where: { $0.state != .upToDate }) { throw ExitCode(1) }
        }
    }
}

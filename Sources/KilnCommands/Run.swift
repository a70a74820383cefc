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
                \(KilnExitCode.usage) for usage errors; \(KilnExitCode.ioError) for cache I/O errors; \
                130 after Ctrl-C (SIGINT) and 143 after SIGTERM, which stop the running stages (killing \
                their whole process trees) and cache nothing of them; a second one quits at once.

                Each line a stage prints is shown as it comes, as `STAGE | line` (stdout) or \
                `STAGE ! line` (stderr), or as an `output` event with --json; the whole logs are \
                stored with the stage's result.
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

        @Flag(name: .customLong("json"), help: "Print one JSON event per line instead of progress lines (wins over --progress).")
        var json = false

        @Option(name: .customLong("progress"), help: ArgumentHelp("auto: a live display when stdout is a terminal (and TERM is not dumb), else plain lines. plain: lines only. tty: the live display, wherever stdout goes.", valueName: "auto|plain|tty"))
        var progress: ProgressOption = .auto

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
            // First: SIGINT and SIGTERM (caught since Kiln.entrypoint) are read by a thread that
            // stops the run.
            let interrupts = Interrupts.start()
            let setup = try PipelineSetup(names: names, params: params, cache: cache, workspace: workspace)
            let (ws, recipe, store) = (setup.workspace, setup.recipe, setup.store)
            // Held shared from the first blob stored until the run record names them (gc waits).
            let lock: Store.HeldLock
            do { lock = try store.holdLock(.shared) } catch {
                storeErrorLine("kiln: \(error.message)")
                throw ExitCode(storeExitCode(for: error))
            }
            defer { lock.release() }
            let (statCache, planner, fingerprint) = (setup.statCache, setup.planner, setup.fingerprint)
            let executor = Executor(workspace: ws, store: store, planner: planner, noCache: noCache)
            let recorder = dryRun ? nil : RunRecorder(store: store, workspace: ws, invocation: .init(
                recipeText: setup.recipeText, overrides: params, selection: setup.stageNames, noCache: noCache, kilnVersion: KilnVersion.string))
            let pipeline = Pipeline(recipe: recipe, stages: setup.selected, executor: executor)
            let printer = RunPrinter(mode: json ? .json : progress.mode(dryRun: dryRun), total: setup.selected.count)
            let started = ContinuousClock.now
            let options = PipelineOptions(jobs: jobs ?? RunSetup.cores(), keepGoing: keepGoing, dryRun: dryRun)
            // Its own task, so an interrupt can cancel it: the executor then kills the sandboxes.
            let run = Task { await pipeline.run(options, events: { printer.event($0) }) }
            interrupts.onInterrupt { signal in
                printer.interrupting(signal)
                run.cancel()
            }
            let summary = await run.value
            try? statCache.save(tmpDirectory: store.tmpDirectory)
            let seconds = RunPrinter.seconds(ContinuousClock.now - started)
            var runID: String?
            let recordStart = ContinuousClock.now
            if let recorder {
                let record = recorder.record(recipe: recipe, summary: summary, interrupted: interrupts.received != nil, seconds: seconds,
                                             invocationID: executor.invocation, hostFingerprint: fingerprint,
                                             trigger: RunRecorder.trigger(environment: RunSetup.processEnvironment()),
                                             images: planner.pinnedImages)
                do { runID = try recorder.write(record) } catch {
                    storeErrorLine("kiln: the run finished but its record could not be stored: \(error.message)")
                }
            }
            let recordSeconds = recorder == nil ? nil : RunPrinter.seconds(ContinuousClock.now - recordStart)
            if let signal = interrupts.received {
                printer.interrupted(by: signal, summary)
                printer.summary(summary, seconds: seconds, dryRun: dryRun, runID: runID, recordSeconds: recordSeconds)
                throw ExitCode(128 + signal)
            }
            printer.summary(summary, seconds: seconds, dryRun: dryRun, runID: runID, recordSeconds: recordSeconds)
            if summary.stageFailed { throw ExitCode(KilnExitCode.stageFailed) }
            if summary.gateFailed { throw ExitCode(KilnExitCode.gateFailed) }
        }
    }
}

/// `kiln run --progress`.
enum ProgressOption: String, ExpressibleByArgument, CaseIterable {
    case auto, plain, tty

    func mode(dryRun: Bool) -> RunPrinter.Mode {
        switch self {
        case .plain: return .plain
        case .tty: return .tty
        // A dry run prints its plan at once: nothing to keep live.
        case .auto: return !dryRun && Terminal.isCapable ? .tty : .plain
        }
    }
}

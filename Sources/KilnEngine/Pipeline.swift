#if canImport(Glibc)
import Glibc
#endif
import KilnRecipe
import KilnStore

/// What the engine reports while it runs, in order (the CLI prints them, or JSON lines).
public enum EngineEvent: Sendable {
    /// A stage's key was computed and it is starting (running, or restoring from the cache).
    case started(stage: String, key: Digest)
    case finished(StageOutcome)
    /// A line a running stage printed (without its newline), as it printed it. The stream's
    /// bytes are also stored whole, as the result's stdout or stderr blob.
    case output(stage: String, stream: StageStream, line: String)
    /// `--dry-run`: whether the stage would run, and its key when it can be known now.
    case planned(stage: String, wouldRun: Bool, key: Digest?, reason: String)
}

public struct PipelineOptions: Sendable {
    /// Stages run at once.
    public var jobs: Int
    /// After a failure, still run the stages that do not depend on it.
    public var keepGoing: Bool
    public var dryRun: Bool
    /// CPUs the scheduler hands out to running stages (default: the online ones).
    public var cpuCount: Int

    public init(jobs: Int, keepGoing: Bool = false, dryRun: Bool = false, cpuCount: Int = PipelineOptions.onlineCPUs()) {
        self.jobs = max(1, jobs)
        self.keepGoing = keepGoing
        self.dryRun = dryRun
        self.cpuCount = max(1, cpuCount)
    }

    public static func onlineCPUs() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// Gives each running stage its own CPUs (`cpus:` of them), the least used first, so parallel
/// stages do not share a core while another idles; with more stages than cores, the least loaded
/// are shared. Indices are into the CPUs kiln may use (`SandboxSpec.Limits.cpuSet`).
struct CPUAllocator {
    private var load: [Int]

    init(count: Int) { load = Array(repeating: 0, count: max(1, count)) }

    mutating func take(_ n: Int) -> [Int] {
        let chosen = load.indices.sorted { (load[$0], $0) < (load[$1], $1) }.prefix(min(max(n, 1), load.count)).sorted()
        for i in chosen { load[i] += 1 }
        return chosen
    }

    mutating func give(_ cpus: [Int]) {
        for i in cpus { load[i] -= 1 }
    }
}

/// A finished run.
public struct RunSummary: Sendable {
    /// One per selected stage, in topological order.
    public var outcomes: [StageOutcome]
    /// Every gate evaluated (stages that ran or were restored).
    public var gates: [GateReport]
    public var stageFailed: Bool { outcomes.contains { $0.status == .failed } }
    /// The stages an interrupt stopped while they ran.
    public var interrupted: [String] { outcomes.filter { $0.status == .interrupted }.map(\.stage) }
    public var gateFailed: Bool { gates.contains { !$0.passed } }
    public func count(_ status: StageOutcome.Status) -> Int { outcomes.filter { $0.status == status }.count }
}

/// Runs the selected stages of a recipe in dependency order, independent ones in parallel.
public struct Pipeline: Sendable {
    public let recipe: Recipe
    public let executor: Executor
    /// Recipe stage indices to run, in topological order (dependencies included).
    let selected: [Int]

    /// `stages` are the recipe's stage names to run (as `Recipe.select` returns them).
    public init(recipe: Recipe, stages: [Stage], executor: Executor) {
        self.recipe = recipe
        self.executor = executor
        let index = Dictionary(recipe.stages.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        selected = stages.compactMap { index[$0.name] }
    }

    /// Cancelling the calling task interrupts the run: no stage starts after that, the running
    /// ones are killed and end `.interrupted`, and the rest are skipped.
    public func run(_ options: PipelineOptions, events: @escaping @Sendable (EngineEvent) -> Void) async -> RunSummary {
        options.dryRun ? dryRun(events) : await execute(options, events)
    }

    func dependencies(of i: Int, in set: Set<Int>) -> [Int] { recipe.graph.dependencies[i].filter(set.contains) }

    /// Records a finished stage's outputs so its dependents' keys use their archive digests.
    static func record(_ outcome: StageOutcome, _ stage: Stage, into upstream: inout [String: UpstreamOutput]) {
        guard let result = outcome.result else { return }
        for output in stage.outputs {
            guard let archive = result.outputs[output.description] else { continue }
            upstream[output.description] = UpstreamOutput(archive: archive, kind: result.outputKinds[output.description] ?? "file")
        }
    }

    func execute(_ options: PipelineOptions, _ events: @escaping @Sendable (EngineEvent) -> Void) async -> RunSummary {
        let chosen = Set(selected)
        var waiting: [Int: Int] = [:]
        for i in selected { waiting[i] = dependencies(of: i, in: chosen).count }
        var ready = selected.filter { waiting[$0] == 0 }
        var readyHead = 0  // ready[..<readyHead] were started (removeFirst is O(n) on 10,000 stages)
        var outcomes: [Int: StageOutcome] = [:]
        var blocked: Set<Int> = []  // failed, skipped, or failed a gate: dependents must not run
        var gateFailed: Set<Int> = []
        var upstream: [String: UpstreamOutput] = [:]
        var gates: [GateReport] = []
        var stop = false

        // Marks `first` done and releases (or skips) its dependents.
        func complete(_ first: Int, _ firstOutcome: StageOutcome) {
            var work = [(first, firstOutcome)]
            while let (i, outcome) = work.popLast() {
                outcomes[i] = outcome
                events(.finished(outcome))
                let stage = recipe.stages[i]
                if outcome.status == .ran || outcome.status == .cached {
                    Self.record(outcome, stage, into: &upstream)
                    let reports = GateReport.evaluate(stage, metrics: outcome.metrics)
                    gates += reports
                    if reports.contains(where: { !$0.passed }) { blocked.insert(i); gateFailed.insert(i) }
                } else {
                    blocked.insert(i)
                }
                if blocked.contains(i) && !options.keepGoing { stop = true }
                // Interrupted: nothing more starts; the stages left are skipped below, as such.
                if Task.isCancelled { continue }
                for d in recipe.graph.dependents[i] where chosen.contains(d) {
                    waiting[d]! -= 1
                    guard waiting[d] == 0 else { continue }
                    let failed = dependencies(of: d, in: chosen).filter(blocked.contains)
                    if failed.isEmpty {
                        ready.append(d)
                    } else {
                        let names = failed.map { recipe.stages[$0].name + (gateFailed.contains($0) ? " (failed a gate)" : "") }
                        work.append((d, StageOutcome(stage: recipe.stages[d].name, status: .skipped,
                                                     reason: "needs \(names.joined(separator: ", ")), which did not succeed")))
                    }
                }
            }
        }

        var allocator = CPUAllocator(count: options.cpuCount)
        var pinned: [Int: [Int]] = [:]
        await withTaskGroup(of: (Int, StageOutcome).self) { group in
            var running = 0
            while true {
                while running < options.jobs, !stop, !Task.isCancelled, readyHead < ready.count {
                    let i = ready[readyHead]
                    readyHead += 1
                    let stage = recipe.stages[i]
                    let inputs: ActionKeyInputs
                    do throws(EngineError) {
                        inputs = try executor.planner.keyInputs(for: stage, in: recipe, upstream: upstream)
                    } catch {
                        complete(i, StageOutcome(stage: stage.name, status: .failed, reason: error.message))
                        continue
                    }
                    let key = inputs.key
                    events(.started(stage: stage.name, key: key))
                    let start = ContinuousClock.now
                    if var hit = executor.hitInPlace(stage, inputs: inputs, key: key) {
                        let d = ContinuousClock.now - start
                        hit.seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                        complete(i, hit)
                        continue
                    }
                    let executor = self.executor
                    let name = stage.name
                    let cpus = allocator.take(stage.cpus)
                    pinned[i] = cpus
                    group.addTask {
                        (i, await executor.execute(stage, inputs: inputs, key: key, cpuSet: cpus) { events(.output(stage: name, stream: $0, line: $1)) })
                    }
                    running += 1
                }
                guard let (i, outcome) = await group.next() else { break }
                running -= 1
                if let cpus = pinned.removeValue(forKey: i) { allocator.give(cpus) }
                complete(i, outcome)
            }
        }
        // Stages never started because the run stopped early.
        let reason = Task.isCancelled ? "the run was interrupted"
            : "the run stopped after a failure (--keep-going runs independent stages)"
        for i in selected where outcomes[i] == nil {
            let outcome = StageOutcome(stage: recipe.stages[i].name, status: .skipped, reason: reason)
            outcomes[i] = outcome
            events(.finished(outcome))
        }
        return RunSummary(outcomes: selected.map { outcomes[$0]! }, gates: gates)
    }

    /// Plans without running: a stage is cached when its key is in the action cache and nothing
    /// it needs would run (otherwise its inputs, hence its key, are not known yet).
    func dryRun(_ events: @Sendable (EngineEvent) -> Void) -> RunSummary {
        let chosen = Set(selected)
        var stale: Set<Int> = []
        var upstream: [String: UpstreamOutput] = [:]
        var outcomes: [StageOutcome] = []
        for i in selected {
            let stage = recipe.stages[i]
            let before = dependencies(of: i, in: chosen).filter(stale.contains).map { recipe.stages[$0].name }
            if !before.isEmpty {
                stale.insert(i)
                events(.planned(stage: stage.name, wouldRun: true, key: nil, reason: "after \(before.joined(separator: ", "))"))
                outcomes.append(StageOutcome(stage: stage.name, status: .skipped, reason: "would run"))
                continue
            }
            do throws(EngineError) {
                let key = try executor.planner.keyInputs(for: stage, in: recipe, upstream: upstream).key
                if !executor.noCache, let cached = executor.cachedResult(key) {
                    let outcome = StageOutcome(stage: stage.name, status: .cached, key: key, result: cached)
                    Self.record(outcome, stage, into: &upstream)
                    events(.planned(stage: stage.name, wouldRun: false, key: key, reason: "cached"))
                    outcomes.append(outcome)
                } else {
                    stale.insert(i)
                    events(.planned(stage: stage.name, wouldRun: true, key: key, reason: executor.noCache ? "--no-cache" : "not in the cache"))
                    outcomes.append(StageOutcome(stage: stage.name, status: .skipped, key: key, reason: "would run"))
                }
            } catch {
                stale.insert(i)
                events(.planned(stage: stage.name, wouldRun: true, key: nil, reason: error.message))
                outcomes.append(StageOutcome(stage: stage.name, status: .skipped, reason: error.message))
            }
        }
        return RunSummary(outcomes: outcomes, gates: [])
    }
}

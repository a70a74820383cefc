import FoundationEssentials
import KilnEngine
import KilnRecipe
import KilnStore
import Synchronization

/// `kiln run`'s output, in one of three modes:
/// - plain: each line a stage prints as `STAGE | line` (stdout) or `STAGE ! line` (stderr), a line
///   per finished stage, and a summary;
/// - tty: the same, printed above a live block at the bottom of the terminal (a line per running
///   stage with its elapsed time, and the counts), redrawn ten times a second and erased at the end;
/// - JSON: one object per line: `started`, `output`, `finished`, `planned`, `gate`, `interrupted`
///   and `summary` events.
///
/// Events come from concurrent stages and from the stages' output readers: the state and every
/// write to the terminal are behind one lock, so lines never interleave.
final class RunPrinter: Sendable {
    enum Mode: String, Sendable, CaseIterable { case plain, tty, json }

    let mode: Mode
    private struct State {
        var running: [(stage: String, since: ContinuousClock.Instant)] = []
        var counts = LiveBlock.Counts()
        /// Lines of the live block now on screen (tty).
        var drawn = 0
        var frame = 0
        var ticker: Ticker?
        var finished = false
        /// Stage lines waiting for the next redraw (tty): printed ten times a second with it, so a
        /// chatty stage costs one erase and redraw per tick, not per line.
        var pending = ""
        /// The terminal's columns, read again at each tick (it may be resized).
        var width = 80
    }
    private let state: Mutex<State>
    /// The cursor is hidden while the block is drawn; a hard exit shows it again.
    private static let cursorHidden = Atomic<Bool>(false)

    init(mode: Mode, total: Int) {
        self.mode = mode
        var s = State()
        s.counts.total = total
        if mode == .tty { s.width = Terminal.width }
        state = Mutex(s)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func format(_ s: Double) -> String {
        let tenths = (s * 10).rounded() / 10
        return "\(tenths)s"
    }

    struct Event: Encodable {
        var event: String
        var stage: String?
        var stream: String?
        var line: String?
        var signal: String?
        var stages: [String]?
        var status: String?
        var key: String?
        var seconds: Double?
        var reason: String?
        var stderr: String?
        /// The stored logs and metrics of a stage that ran or was restored (`kiln` store blobs).
        var stdoutDigest: String?
        var stderrDigest: String?
        var metrics: JSONValue?
        var gate: String?
        var value: Double?
        var threshold: Double?
        var passed: Bool?
        var ran: Int?, cached: Int?, failed: Int?, skipped: Int?, interrupted: Int?
        var savedSeconds: Double?
        var run: String?
        /// Seconds spent building and storing the run record (after the stages).
        var recordSeconds: Double?
    }

    func emit(_ e: Event) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(e) else { return }
        let line = String(decoding: data, as: UTF8.self) + "\n"
        state.withLock { _ in Terminal.write(1, line) }
    }

    /// Prints `lines` on standard output: above the live block in tty mode (erase it, print,
    /// draw it again, in one write so it does not flicker).
    private func show(_ lines: [String], state s: inout State) {
        var text = ""
        if mode == .tty { text += LiveBlock.erase(s.drawn) + s.pending }
        s.pending = ""
        for line in lines { text += line + "\n" }
        if mode == .tty { text += drawBlock(&s) }
        Terminal.write(1, text)
    }

    private func show(_ lines: [String]) {
        state.withLock { show(lines, state: &$0) }
    }

    /// The block's text; remembers how many lines it has.
    private func drawBlock(_ s: inout State) -> String {
        guard !s.finished, !s.running.isEmpty || s.counts.done > 0 else {
            s.drawn = 0
            return ""
        }
        var text = ""
        if !Self.cursorHidden.exchange(true, ordering: .relaxed) { text += "\u{1B}[?25l" }
        let now = ContinuousClock.now
        let lines = LiveBlock.render(running: s.running.map { ($0.stage, Self.seconds(now - $0.since)) }, counts: s.counts,
                                     frame: s.frame, width: s.width)
        s.drawn = lines.count
        for line in lines { text += line + "\n" }
        return text
    }

    /// The ticker's redraw: the spinner turns and the elapsed times move on.
    private func tick() {
        state.withLock { s in
            guard !s.finished else { return }
            s.frame += 1
            s.width = Terminal.width
            let text = LiveBlock.erase(s.drawn) + s.pending
            s.pending = ""
            Terminal.write(1, text + drawBlock(&s))
        }
    }

    /// Erases the block for good and stops the ticker (before the summary).
    private func endLiveBlock() {
        let ticker = state.withLock { s -> Ticker? in
            if mode == .tty { Terminal.write(1, LiveBlock.erase(s.drawn) + s.pending) }
            s.pending = ""
            s.drawn = 0
            s.finished = true
            defer { s.ticker = nil }
            return s.ticker
        }
        // Outside the lock: the ticker may be waiting for it.
        ticker?.stop()
        if Self.cursorHidden.exchange(false, ordering: .relaxed) { Terminal.write(1, "\u{1B}[?25h") }
    }

    /// On a hard exit (a second Ctrl-C): give the terminal its cursor back.
    static func restoreTerminal() {
        if cursorHidden.exchange(false, ordering: .relaxed) { Terminal.write(1, "\n\u{1B}[?25h") }
    }

    /// The first SIGINT or SIGTERM: say that the run is stopping (the summary says what stopped).
    func interrupting(_ signal: Int32) {
        let text = "kiln: \(Interrupts.name(signal)): stopping the running stages (again to quit at once)"
        if mode == .tty { show([text]) } else { Terminal.write(2, text + "\n") }
    }

    func event(_ event: EngineEvent) {
        switch event {
        case .started(let stage, let key):
            switch mode {
            case .json: emit(Event(event: "started", stage: stage, key: key.description))
            case .plain: break
            case .tty:
                state.withLock { s in
                    s.running.append((stage, ContinuousClock.now))
                    if s.ticker == nil, !s.finished { s.ticker = Ticker { [weak self] in self?.tick() } }
                    Terminal.write(1, LiveBlock.erase(s.drawn) + drawBlock(&s))
                }
            }
        case .output(let stage, let stream, let line):
            switch mode {
            case .json:
                // Encoded by hand: JSONEncoder costs several microseconds a line, and a chatty
                // stage waits on its pipe meanwhile.
                let text = OutputJSON.event(stage: stage, stream: stream.rawValue, line: line)
                state.withLock { _ in Terminal.write(1, text) }
            case .plain:
                show(["\(stage) \(stream == .stdout ? "|" : "!") \(line)"])
            case .tty:
                state.withLock { s in
                    s.pending += Terminal.truncate("\(stage) \(stream == .stdout ? "|" : "!") \(Terminal.sanitize(line))", to: s.width - 1) + "\n"
                    // No ticker to print them (it could not start), or a flood: print now.
                    if s.ticker == nil || s.pending.utf8.count > 256 * 1024 { show([], state: &s) }
                }
            }
        case .planned(let stage, let wouldRun, let key, let reason):
            if mode == .json {
                emit(Event(event: "planned", stage: stage, status: wouldRun ? "run" : "cached", key: key?.description, reason: reason))
            } else {
                show(["\(wouldRun ? "would run" : "cached   ")  \(stage)\(wouldRun ? "  (\(reason))" : "")"])
            }
        case .finished(let o):
            if mode == .json {
                emit(Event(event: "finished", stage: o.stage, status: o.status.rawValue, key: o.key?.description,
                           seconds: o.seconds, reason: o.reason, stderr: o.stderrTail,
                           stdoutDigest: o.result?.stdout.description, stderrDigest: o.result?.stderr.description, metrics: o.metrics))
                return
            }
            state.withLock { s in
                s.running.removeAll { $0.stage == o.stage }
                s.counts.done += 1
                switch o.status {
                case .ran: s.counts.ran += 1
                case .cached: s.counts.cached += 1
                case .failed: s.counts.failed += 1
                case .skipped, .interrupted: break
                }
                show(Self.lines(o), state: &s)
            }
        }
    }

    /// The lines for a finished stage (plain and tty).
    static func lines(_ o: StageOutcome) -> [String] {
        switch o.status {
        case .ran, .cached:
            return ["\(o.status == .ran ? "ran   " : "cached")  \(o.stage)  (\(format(o.seconds)))"]
        case .failed:
            var lines = ["failed  \(o.stage)  (\(format(o.seconds))): \(o.reason ?? "failed")"]
            if let tail = o.stderrTail, !tail.isEmpty {
                lines += tail.split(separator: "\n", omittingEmptySubsequences: false).map { "  \(o.stage) | \($0)" }
            }
            return lines
        case .skipped:
            return ["skipped \(o.stage): \(o.reason ?? "not run")"]
        case .interrupted:
            return ["stopped \(o.stage)  (\(format(o.seconds))): interrupted"]
        }
    }

    /// After an interrupt, before the summary: which stages it stopped.
    func interrupted(by signal: Int32, _ s: RunSummary) {
        let stopped = s.interrupted
        let notStarted = s.outcomes.filter { $0.status == .skipped && $0.reason == "the run was interrupted" }.count
        if mode == .json {
            emit(Event(event: "interrupted", signal: Interrupts.name(signal), stages: stopped))
            return
        }
        endLiveBlock()
        let what = stopped.isEmpty ? "no stage was running" : "stopped \(stopped.joined(separator: ", "))"
        show(["interrupted by \(Interrupts.name(signal)): \(what)\(notStarted > 0 ? "; \(notStarted) not started" : "")"])
    }

    func summary(_ s: RunSummary, seconds: Double, dryRun: Bool, runID: String? = nil, recordSeconds: Double? = nil) {
        endLiveBlock()
        let saved = s.outcomes.filter { $0.status == .cached }.compactMap { $0.result?.wallSeconds }.reduce(0, +)
        if mode == .json {
            for report in s.gates {
                for check in report.checks {
                    emit(Event(event: "gate", stage: report.stage, reason: check.problem, gate: check.comparison.description,
                               value: check.left, threshold: check.right, passed: check.passed))
                }
            }
            emit(Event(event: "summary", seconds: seconds, ran: s.count(.ran), cached: s.count(.cached),
                       failed: s.count(.failed), skipped: s.count(.skipped),
                       interrupted: s.count(.interrupted) > 0 ? s.count(.interrupted) : nil, savedSeconds: saved,
                       run: runID, recordSeconds: recordSeconds))
            return
        }
        if dryRun {
            show(["\(s.outcomes.count - s.count(.cached)) would run, \(s.count(.cached)) cached"])
            return
        }
        let stopped = s.count(.interrupted) > 0 ? ", \(s.count(.interrupted)) interrupted" : ""
        show(["\(s.outcomes.count) stages: \(s.count(.ran)) ran, \(s.count(.cached)) cached, \(s.count(.failed)) failed, \(s.count(.skipped)) skipped\(stopped) in \(Self.format(seconds)); the cache saved \(Self.format(saved))"])
        if let runID { show(["run \(runID) recorded: kiln show \(runID)"]) }
        let failedGates = s.gates.filter { !$0.passed }
        if !failedGates.isEmpty {
            show(["gates failed:\n" + GateTable.render(s.gates.filter { g in failedGates.contains { $0.stage == g.stage } })])
        }
    }
}

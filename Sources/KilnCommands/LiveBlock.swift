#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox  // Its header brings pthread.h: pthread_attr_t is declared there too.
import Synchronization

/// The block `kiln run` keeps at the bottom of a terminal while stages run: a line per running
/// stage with its elapsed time, then the counts. Redrawn in place: the cursor stays on the line
/// below the block, so erasing it is "up one line, clear it" once per line drawn.
struct LiveBlock {
    struct Counts {
        var ran = 0, cached = 0, failed = 0, done = 0, total = 0
    }

    static let spinner: [String] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
    static let eraseLine = "\u{1B}[1A\u{1B}[2K"

    /// The lines of the block (each without its newline), cut to `width - 1` columns so none wraps
    /// (a wrapped line would take two rows, and the erase would miss one).
    static func render(running: [(stage: String, seconds: Double)], counts: Counts, frame: Int, width: Int) -> [String] {
        let spin = spinner[frame % spinner.count]
        let nameWidth = min(running.map(\.stage.count).max() ?? 0, max(8, width / 2))
        var lines = running.map { r in
            let name = r.stage.count > nameWidth ? r.stage : r.stage + String(repeating: " ", count: nameWidth - r.stage.count)
            return "\(spin) \(name)  \(RunPrinter.format(r.seconds))"
        }
        lines.append("ran \(counts.ran) · cached \(counts.cached) · failed \(counts.failed) · running \(running.count) · \(counts.done)/\(counts.total) stages")
        return lines.map { Terminal.truncate($0, to: width - 1) }
    }

    /// Erases `count` block lines drawn earlier.
    static func erase(_ count: Int) -> String { String(repeating: eraseLine, count: count) }
}

/// Calls `tick` about ten times a second on a thread of its own until stopped.
final class Ticker: @unchecked Sendable {
    private let tick: @Sendable () -> Void
    private let stopped = Atomic<Bool>(false)
    private var thread: pthread_t?

    init(_ tick: @escaping @Sendable () -> Void) {
        self.tick = tick
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 256 * 1024)
        var handle = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&handle, &attributes, { context in
            Unmanaged<Ticker>.fromOpaque(context!).takeRetainedValue().loop()
            return nil
        }, context) == 0 {
            thread = handle
        } else {
            Unmanaged<Ticker>.fromOpaque(context).release()  // No ticks: the block is drawn on events only.
        }
    }

    private func loop() {
        while !stopped.load(ordering: .acquiring) {
            usleep(100_000)
            if stopped.load(ordering: .acquiring) { break }
            tick()
        }
    }

    /// Stops the thread and waits for it (it may be in the middle of a tick).
    func stop() {
        stopped.store(true, ordering: .releasing)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }
}

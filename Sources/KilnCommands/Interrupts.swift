#if canImport(Glibc)
import Glibc
#endif
import CKilnSandbox
import Synchronization

/// `kiln run`'s SIGINT and SIGTERM. A C handler writes each signal's number into a pipe, and one
/// thread reads the pipe and asks the run to stop (the executor kills the running sandboxes and
/// cleans up); a second signal exits at once. The handler does nothing but that write (nothing
/// else in a handler is safe), and the signals are blocked in every other thread kiln starts, so
/// no system call of theirs is interrupted and no sandbox starts with them deliverable.
///
/// (Not `sigwait` alone: libdispatch parks the main thread in `sigsuspend` with every signal
/// unblocked, and the signals' default action there would kill kiln.) The sandboxed commands do
/// not inherit the mask or the handler: the sandbox resets both before execve (`reset_signals`).
final class Interrupts: Sendable {
    static let signals: [Int32] = [SIGINT, SIGTERM]
    /// The pipe's read end, set once by `install()` while kiln has a single thread.
    nonisolated(unsafe) private static var pipeReadEnd: Int32 = -1

    private struct State {
        var received: Int32?
        var handler: (@Sendable (Int32) -> Void)?
    }
    private let state = Mutex(State())

    /// Installs the handler and blocks the signals in the calling thread, hence in every thread it
    /// starts later. Must run before the first thread exists (`Kiln.entrypoint`, before the
    /// concurrency runtime starts). If any step fails the signals keep their default action.
    static func install() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // Non-blocking: a handler must never wait (a full pipe already holds enough signals).
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        guard kiln_interrupt_pipe_begin(fds[1], signals, signals.count) == 0 else {
            close(fds[0]); close(fds[1])
            return
        }
        pipeReadEnd = fds[0]
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        return set
    }

    /// Starts the reading thread. Until `onInterrupt` is set, a signal exits at once (there is
    /// nothing to clean up yet).
    static func start() -> Interrupts {
        let interrupts = Interrupts()
        guard pipeReadEnd >= 0 else { return interrupts }
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, 256 * 1024)
        let context = Unmanaged.passRetained(interrupts).toOpaque()
        if pthread_create(&thread, &attributes, { context in
            Unmanaged<Interrupts>.fromOpaque(context!).takeRetainedValue().wait()
            return nil
        }, context) != 0 {
            Unmanaged<Interrupts>.fromOpaque(context).release()
        }
        return interrupts
    }

    /// The first signal received, if any.
    var received: Int32? { state.withLock { $0.received } }

    /// What the first signal does (called on the waiting thread); runs now if one already came.
    func onInterrupt(_ handler: @escaping @Sendable (Int32) -> Void) {
        let pending: Int32? = state.withLock {
            $0.handler = handler
            return $0.received
        }
        if let pending { handler(pending) }
    }

    private func wait() {
        // This thread takes the signals too (the handler then runs here), so they are delivered
        // even where no other thread has them unblocked.
        var set = Self.signalSet()
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        while true {
            var byte: UInt8 = 0
            let n = read(Self.pipeReadEnd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return }
            let signal = Int32(byte)
            let (first, handler) = state.withLock { s -> (Bool, (@Sendable (Int32) -> Void)?) in
                guard s.received == nil else { return (false, nil) }
                s.received = signal
                return (true, s.handler)
            }
            // A second signal, or one before there is anything to stop: leave now. The sandboxes
            // die with their supervisor threads (their parent-death signal).
            guard first, let handler else {
                RunPrinter.restoreTerminal()
                _exit(128 + signal)
            }
            handler(signal)
        }
    }

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        default: return "signal \(signal)"
        }
    }
}

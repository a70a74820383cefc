#if canImport(Glibc)
import Glibc
#endif
import KilnRecipe

/// Which of a stage's output streams a line came from.
public enum StageStream: String, Sendable {
    case stdout, stderr
}

/// One output stream of a running stage: the sandbox writes into a pipe, and a reader on a thread
/// of its own copies every byte to the log file (stored as the stage's stdout or stderr blob) and
/// hands out whole lines as they arrive.
///
/// A pthread, not a task: the read blocks for as long as the stage runs, and a blocked task would
/// hold one of the cooperative pool's threads (two on a two-core machine).
final class OutputTee: @unchecked Sendable {
    /// Give this to the sandbox; `closeWriteEnd()` once the sandbox has ended.
    private(set) var writeEnd: Int32
    private let readEnd: Int32
    private let log: Int32
    private let emit: @Sendable (String) -> Void
    private var thread: pthread_t?
    /// The first errno a log write failed with (the reader goes on draining the pipe regardless,
    /// so the stage never blocks on a full pipe).
    private var writeError: Int32 = 0

    /// Creates the pipe and the log file (truncated) and starts the reader.
    init(log path: String, emit: @escaping @Sendable (String) -> Void) throws(EngineError) {
        self.emit = emit
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw EngineError(.io, "cannot create a pipe for a stage's output: \(Self.describe(errno))") }
        // Close-on-exec for both ends: only the sandbox's command gets the write end, by dup2.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        readEnd = fds[0]
        writeEnd = fds[1]
        log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else {
            let e = errno
            close(fds[0]); close(fds[1])
            throw EngineError(.io, "cannot create the log file \(path): \(Self.describe(e))")
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 512 * 1024)
        var handle = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&handle, &attributes, { context in
            Unmanaged<OutputTee>.fromOpaque(context!).takeRetainedValue().drain()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<OutputTee>.fromOpaque(context).release()
            close(readEnd); close(writeEnd); close(log)
            throw EngineError(.io, "cannot start a thread to read a stage's output: \(Self.describe(rc))")
        }
        thread = handle
    }

    /// The parent's copy of the write end: closed once the sandbox has ended, so the reader sees
    /// end-of-file when the last process that could write has gone.
    func closeWriteEnd() {
        if writeEnd >= 0 { close(writeEnd) }
        writeEnd = -1
    }

    /// Closes the write end, waits for the reader to reach end-of-file, and closes the log.
    /// Throws if a write to the log failed (a full disk): the log would not be the stage's output.
    func finish() throws(EngineError) {
        closeWriteEnd()
        if let thread { pthread_join(thread, nil) }
        thread = nil
        close(log)
        if writeError != 0 { throw EngineError(.io, "cannot write a stage's log: \(Self.describe(writeError))") }
    }

    private func drain() {
        var splitter = LineSplitter()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(readEnd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            if writeError == 0 { writeError = Self.writeAll(log, chunk) }
            splitter.feed(chunk, emit)
        }
        splitter.finish(emit)
        close(readEnd)
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return 0
    }

    private static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}

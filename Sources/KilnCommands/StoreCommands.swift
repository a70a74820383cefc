import ArgumentParser
import KilnStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Kiln {
    /// The store's subcommands (`hash`, `archive`, `extract`, `cache`), registered on the root command.
    static let storeCommands: [any ParsableCommand.Type] = [Hash.self, Archive.self, Extract.self, Cache.self]
}

/// `--cache DIR`, shared by the store's commands.
struct CacheOptions: ParsableArguments {
    @Option(
        name: .customLong("cache"),
        help: ArgumentHelp(
            "The cache directory (default: $KILN_CACHE, else cache/ of the workspace, else ./cache).",
            valueName: "dir"))
    var cache: String?

    var location: CacheLocation { CacheLocation.resolve(option: cache) }

    func validate() throws {
        if let cache, cache.isEmpty {
            throw ValidationError("'--cache' needs a directory; got an empty string.")
        }
    }
}

/// Writes a line to standard error (write(2): no stdio globals, no Foundation).
func storeErrorLine(_ message: String) {
    writeLine(2, message)
}

/// Writes a line to standard output.
func storeOutputLine(_ message: String) {
    writeLine(1, message)
}

private func writeLine(_ fd: Int32, _ message: String) {
    var bytes = Array(message.utf8)
    if bytes.last != 10 { bytes.append(10) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// Runs a store operation and turns a `StoreError` into a message on stderr and kiln's exit code.
func storeMain<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as StoreError {
        storeErrorLine("kiln: \(error.message)")
        throw ExitCode(storeExitCode(for: error))
    }
}

func storeExitCode(for error: StoreError) -> Int32 {
    switch error.code {
    case .refused, .corrupt, .unsupportedFileType, .archive: return KilnExitCode.dataError
    case .noSpace, .io, .changedWhileReading: return KilnExitCode.ioError
    case .invalidArgument: return KilnExitCode.usage
    case .notFound: return EXIT_FAILURE
    }
}

/// `SOURCE_DATE_EPOCH` from the environment, checked.
func sourceDateEpochFromEnvironment() throws -> Int64? {
    guard let raw = getenv("SOURCE_DATE_EPOCH") else { return nil }
    let text = String(cString: raw)
    if text.isEmpty { return nil }
    guard let v = Int64(text), v >= 0 else {
        throw ValidationError("SOURCE_DATE_EPOCH must be a whole number of seconds since 1970 (≥ 0); it is '\(text)'.")
    }
    return v
}

import ArgumentParser
import FoundationEssentials
import KilnEngine
import KilnRecipe
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

/// What the run-record commands (`runs`, `show`, `logs`, `diff`, `replay`, `verify`, `export`)
/// share: opening the cache's runs and turning engine errors into messages and exit codes.
enum RecordSupport {
    static func catalog(_ options: CacheOptions) throws -> RunCatalog {
        let path = options.location.path
        let store: Store?
        do { store = try Store.existing(root: path) } catch {
            storeErrorLine("kiln: \(error.message)")
            throw ExitCode(storeExitCode(for: error))
        }
        guard let store else {
            storeErrorLine("kiln: there is no cache at \(path): run `kiln run` first, or give --cache DIR (or set KILN_CACHE).")
            throw ExitCode(KilnExitCode.noSuchRun)
        }
        return RunCatalog(store: store)
    }

    /// Runs `body`, printing an EngineError or StoreError as `kiln: message` with its exit code.
    static func main<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as EngineError {
            storeErrorLine("kiln: \(error.message)")
            throw ExitCode(exitCode(error))
        } catch let error as StoreError {
            storeErrorLine("kiln: \(error.message)")
            throw ExitCode(storeExitCode(for: error))
        }
    }

    static func exitCode(_ error: EngineError) -> Int32 {
        switch error.code {
        case .unknownRun: return KilnExitCode.noSuchRun
        case .hostDrift: return KilnExitCode.hostDrift
        case .badRecord: return KilnExitCode.dataError
        case .store, .io: return KilnExitCode.ioError
        default: return KilnExitCode.stageFailed
        }
    }

    static func printJSON<T: Encodable>(_ value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        if let data = try? encoder.encode(value) { storeOutputLine(String(decoding: data, as: UTF8.self)) }
    }

    /// `2026-11-26 17:20:01 UTC`.
    static func time(_ unix: Double) -> String {
        var t = time_t(unix)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) UTC"
    }

    static func short(_ d: Digest?) -> String { d.map { "sha256:" + $0.hex.prefix(12) } ?? "-" }

    static func bytes(_ n: UInt64?) -> String {
        guard let n else { return "-" }
        if n >= 1 << 30 { return "\((Double(n) / Double(1 << 30) * 10).rounded() / 10) GiB" }
        if n >= 1 << 20 { return "\(n >> 20) MiB" }
        if n >= 1 << 10 { return "\(n >> 10) KiB" }
        return "\(n) B"
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String((x * 1e6).rounded() / 1e6)
    }

    /// `accuracy=0.98 loss=0.1` from a metrics value.
    static func metrics(_ value: JSONValue?) -> String {
        RunDiff.flatten(value).sorted { $0.key < $1.key }.map { "\($0.key)=\(number($0.value))" }.joined(separator: " ")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CArchive

/// Where the cache is (DESIGN.md, The workspace): `--cache DIR`, else `$KILN_CACHE`, else `cache/`
/// beside the nearest `recipes/` found walking up from the current directory, else `./cache`.
public struct CacheLocation: Sendable, Equatable {
    public enum Source: String, Sendable { case option, environment, workspace, currentDirectory }

    public var path: String
    public var source: Source

    public init(path: String, source: Source) {
        self.path = path
        self.source = source
    }

    public static func resolve(option: String?, environment: [String: String], currentDirectory: String) -> CacheLocation {
        if let option, !option.isEmpty { return CacheLocation(path: option, source: .option) }
        if let env = environment["KILN_CACHE"], !env.isEmpty { return CacheLocation(path: env, source: .environment) }
        if let ws = workspace(from: currentDirectory) {
            return CacheLocation(path: Sys.join(ws, "cache"), source: .workspace)
        }
        return CacheLocation(path: Sys.join(currentDirectory, "cache"), source: .currentDirectory)
    }

    /// The process's own settings.
    public static func resolve(option: String?) -> CacheLocation {
        var env: [String: String] = [:]
        if let v = getenv("KILN_CACHE") { env["KILN_CACHE"] = String(cString: v) }
        return resolve(option: option, environment: env, currentDirectory: Sys.cwd())
    }

    /// The nearest ancestor of `directory` (itself included) that holds a `recipes/` directory.
    public static func workspace(from directory: String) -> String? {
        var dir = directory
        while true {
            if Sys.isDirectory(Sys.join(dir, "recipes")) { return dir }
            let parent = Sys.dirname(dir)
            if parent == dir { return nil }
            dir = parent
        }
    }
}

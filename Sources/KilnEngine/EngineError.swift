/// Why the engine could not plan or run a stage (as opposed to a stage's command failing, which
/// is a `StageOutcome`). Messages say what, where and how to fix it.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A declared input is missing from the workspace.
        case missingInput
        /// The stage exited 0 but did not create a declared output.
        case missingOutput
        /// The stage wrote a workspace path it did not declare as an output.
        case undeclaredOutput
        /// The metrics file is missing or not JSON.
        case badMetrics
        /// The store failed (I/O, full disk, corrupt blob).
        case store
        /// The sandbox could not be set up.
        case sandbox
        /// A workspace file operation failed.
        case io
        /// No run in the cache has that name.
        case unknownRun
        /// A run record or bundle is not usable (missing blobs, wrong format).
        case badRecord
        /// The machine differs from the recorded one, and the caller did not allow it.
        case hostDrift
        /// The recipe's pinned image is not in the cache (or cannot be extracted).
        case missingImage
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

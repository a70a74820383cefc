import KilnRecipe
import KilnStore

/// How one stage ended in a run.
public struct StageOutcome: Sendable {
    public enum Status: String, Sendable {
        /// Ran in the sandbox and succeeded; its result is cached.
        case ran
        /// Restored from the action cache.
        case cached
        /// Ran and failed (or could not be planned or run); nothing was cached.
        case failed
        /// Not run: a stage it needs failed (or the run stopped).
        case skipped
        /// Stopped by an interrupt (Ctrl-C, SIGTERM) while it ran or restored: its sandbox was
        /// killed, and nothing of it was cached or put in the workspace.
        case interrupted
    }

    public var stage: String
    public var status: Status
    public var key: Digest?
    public var result: ActionResult?
    /// Why it failed or was skipped.
    public var reason: String?
    /// The tail of its stderr, when it failed.
    public var stderrTail: String?
    /// Seconds the engine spent on it (running, or restoring).
    public var seconds: Double
    /// Parsed metrics, when the stage declares them.
    public var metrics: JSONValue?
    /// What its key was computed from (nil when it could not be planned).
    public var inputs: ActionKeyInputs?

    public init(stage: String, status: Status, key: Digest? = nil, result: ActionResult? = nil, reason: String? = nil,
                stderrTail: String? = nil, seconds: Double = 0, metrics: JSONValue? = nil) {
        self.stage = stage
        self.status = status
        self.key = key
        self.result = result
        self.reason = reason
        self.stderrTail = stderrTail
        self.seconds = seconds
        self.metrics = metrics
    }
}

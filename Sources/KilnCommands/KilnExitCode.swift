/// Kiln's own exit codes, distinct from anything a sandboxed command returns with its own meaning.
/// They follow `timeout(1)` (124) and `docker run`/`podman run` (125); 64 is sysexits' EX_USAGE.
public enum KilnExitCode {
    /// A command-line usage error (also what swift-argument-parser uses for validation errors).
    public static let usage: Int32 = 64
    /// A sandbox limit killed the command (the memory cgroup's OOM killer).
    public static let limitExceeded: Int32 = 123
    /// `--timeout` expired; the whole process tree was killed.
    public static let timeout: Int32 = 124
    /// Refused or bad data (sysexits' EX_DATAERR): a hostile archive `kiln extract` refused, a corrupt
    /// blob, a file type kiln does not archive (socket, device, fifo).
    public static let dataError: Int32 = 65
    /// A store I/O failure (sysexits' EX_IOERR), a full disk included; the cache is left consistent.
    public static let ioError: Int32 = 74
    /// The sandbox could not be set up (the message names the step and the errno).
    public static let sandboxSetupFailed: Int32 = 125
    /// The command was found but could not be executed (permission, format).
    public static let commandNotExecutable: Int32 = 126
    /// The command was not found in the sandbox.
    public static let commandNotFound: Int32 = 127

    /// `kiln run`: a stage failed (its command, a missing or undeclared output, its inputs); like
    /// make's failure status. Its dependents were skipped.
    public static let stageFailed: Int32 = 2
    /// `kiln run`: every stage succeeded but a gate on their metrics failed (like Bazel's 3,
    /// "built, but tests failed"). The stages' results stay cached.
    public static let gateFailed: Int32 = 3
    /// `kiln run`: the recipe is invalid or cannot be found (sysexits' EX_CONFIG); nothing ran.
    /// Also when the recipe pins an image the cache does not hold.
    public static let recipeInvalid: Int32 = 78

    /// The run named does not exist in the cache (sysexits' EX_NOINPUT).
    public static let noSuchRun: Int32 = 66
    /// `kiln replay`/`kiln verify`: an output was rebuilt with different bytes (Nix uses 104 for
    /// `--check` failures too).
    public static let notReproducible: Int32 = 104
    /// `kiln replay`: the host toolchain differs from the recorded one and --allow-host-drift was
    /// not given; nothing was rebuilt.
    public static let hostDrift: Int32 = 105

    static let documentation = """
        \(limitExceeded) when a limit (--memory) killed it; \(timeout) on --timeout; \
        \(sandboxSetupFailed) when the sandbox could not be set up; \(commandNotExecutable) when the \
        command could not be executed; \(commandNotFound) when it was not found; \(usage) for usage errors; \(dataError) for \
        refused archives and corrupt blobs; \(ioError) for store I/O errors (a full disk); \
        kiln run: \(stageFailed) when a stage failed, \(gateFailed) when a gate failed, \(recipeInvalid) for recipe errors; \
        \(noSuchRun) when a named run is not in the cache; kiln replay and verify: \(notReproducible) when an output \
        is not byte-identical, \(hostDrift) when the host differs from the record.
        """
}

#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import KilnImage
import KilnRecipe
import KilnStore

/// Writes the record of a `kiln run` (cache hits included). Started before the pipeline so the
/// slow parts (git's dirty check) overlap the run; `finish` builds and stores the record.
public final class RunRecorder: @unchecked Sendable {
    public struct Invocation: Sendable {
        public var recipeText: String
        public var overrides: [String]
        public var selection: [String]
        public var noCache: Bool
        public var kilnVersion: String

        public init(recipeText: String, overrides: [String], selection: [String], noCache: Bool, kilnVersion: String) {
            self.recipeText = recipeText
            self.overrides = overrides
            self.selection = selection
            self.noCache = noCache
            self.kilnVersion = kilnVersion
        }
    }

    let catalog: RunCatalog
    let invocation: Invocation
    let workspace: String
    let startedAt: Double
    let git: GitProbe?

    public init(store: Store, workspace: String, invocation: Invocation) {
        catalog = RunCatalog(store: store)
        self.invocation = invocation
        self.workspace = workspace
        startedAt = Date.now.timeIntervalSince1970
        git = GitProbe.start(workspace: workspace)
    }

    /// The trigger: `$KILN_TRIGGER`, else `github-actions` or `ci` when their variables say so, else `cli`.
    public static func trigger(environment: [String: String]) -> String {
        if let t = environment["KILN_TRIGGER"], !t.isEmpty { return t }
        if environment["GITHUB_ACTIONS"] == "true" { return "github-actions" }
        if let ci = environment["CI"], !ci.isEmpty, ci != "false", ci != "0" { return "ci" }
        return "cli"
    }

    public func record(recipe: Recipe, summary: RunSummary, interrupted: Bool, seconds: Double,
                       invocationID: String, hostFingerprint: Digest, trigger: String, images: [ResolvedImage] = []) -> RunRecord {
        var params: [String: String] = [:]
        for p in recipe.params { params[p.name] = Planner.typed(p.value) }
        let status = interrupted ? "interrupted" : summary.stageFailed ? "failed" : summary.gateFailed ? "gate-failed" : "succeeded"
        let byName = Dictionary(recipe.stages.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return RunRecord(
            format: RunRecord.currentFormat, invocation: invocationID,
            recipe: .init(name: recipe.name, file: recipe.file, text: invocation.recipeText, image: recipe.image.description),
            params: params, overrides: invocation.overrides, selection: invocation.selection, trigger: trigger,
            git: git?.finish(), host: HostFacts.current(kilnVersion: invocation.kilnVersion, fingerprint: hostFingerprint),
            startedAt: startedAt, seconds: seconds, status: status, noCache: invocation.noCache,
            stages: summary.outcomes.map { RunRecord.StageRecord($0, stage: byName[$0.stage], gates: summary.gates) },
            images: images.isEmpty ? nil : images.map { RunRecord.ImageUse(name: $0.name, archive: $0.digest, record: $0.recordDigest) })
    }

    /// Stores the record; returns the run id.
    public func write(_ record: RunRecord) throws(StoreError) -> String {
        try catalog.add(record)
    }
}

/// The workspace's git commit (read from .git directly) and whether tracked files differ from it
/// (`git diff --quiet HEAD`, started in the background so it overlaps the run).
struct GitProbe {
    let commit: String
    let pid: pid_t?

    static func start(workspace: String) -> GitProbe? {
        let dotGit = workspace + "/.git"
        guard let head = firstLine(dotGit + "/HEAD") else { return nil }
        var commit = head
        if head.hasPrefix("ref: ") {
            let ref = String(head.dropFirst(5))
            if let c = firstLine(dotGit + "/" + ref) {
                commit = c
            } else if let packed = HostFacts.read(dotGit + "/packed-refs").split(separator: "\n").first(where: { $0.hasSuffix(" " + ref) }) {
                commit = String(packed.prefix { $0 != " " })
            } else {
                return nil  // a branch with no commit yet
            }
        }
        guard commit.count >= 40, commit.allSatisfy(\.isHexDigit) else { return nil }
        return GitProbe(commit: commit, pid: spawnGitDiff(workspace))
    }

    static func firstLine(_ path: String) -> String? {
        let text = HostFacts.read(path)
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        return line.isEmpty ? nil : line
    }

    static func spawnGitDiff(_ workspace: String) -> pid_t? {
        Subprocess.spawn(["git", "-C", workspace, "diff", "--quiet", "HEAD", "--"])
    }

    func finish() -> RunRecord.GitFacts {
        guard let pid else { return .init(commit: commit, dirty: nil) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        return .init(commit: commit, dirty: exited && code <= 1 ? code == 1 : nil)
    }
}

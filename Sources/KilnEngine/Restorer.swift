import KilnRecipe
import KilnStore

/// Puts a stage's cached outputs into the workspace: each output's archive is extracted safely
/// beside its place and renamed in; an output whose tree already matches is left alone.
struct Restorer {
    let workspace: String
    let store: Store
    let statCache: StatCache

    func restore(_ result: ActionResult, of stage: Stage) throws(EngineError) {
        for output in stage.outputs {
            let name = output.description
            guard let archive = result.outputs[name], let kind = result.outputKinds[name] else {
                throw EngineError(.store, "the cached result of stage '\(stage.name)' does not name its output \(name). Rerun with --no-cache to rebuild it.")
            }
            let target = WorkspaceFiles.join(workspace, output.path)
            if let tree = result.outputTrees[name], WorkspaceFiles.existsNoFollow(target),
               (try? TreeHasher.digest(of: target, cache: statCache).digest) == tree {
                continue  // already what the cache holds
            }
            let parent = WorkspaceFiles.parent(target)
            try WorkspaceFiles.makeDirectories(parent)
            let staging = WorkspaceFiles.join(parent, ".kiln-restore-\(UInt64.random(in: 0...UInt64.max))")
            do {
                _ = try SafeExtractor().extract(blob: archive, from: store, to: staging)
            } catch {
                try? WorkspaceFiles.remove(staging)
                throw EngineError(.store, "cannot restore \(name) of stage '\(stage.name)' from the cache: \(error.message)")
            }
            // Remove the old output only once the new one is extracted beside it.
            try WorkspaceFiles.remove(target)
            if kind == "dir" {
                try WorkspaceFiles.move(staging, to: target)
            } else {
                let base = output.path.split(separator: "/").last.map(String.init) ?? output.path
                try WorkspaceFiles.move(WorkspaceFiles.join(staging, base), to: target)
                try WorkspaceFiles.remove(staging)
            }
        }
    }
}

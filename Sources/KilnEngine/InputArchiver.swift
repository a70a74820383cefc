import KilnStore

/// Keeps a copy of every workspace input in the store, so a run record can rebuild a stage's
/// inputs without the workspace (replay, bundles). An input tree archived once is found again by
/// its tree digest (`Store.archive(forTree:)`), so an unchanged input costs one small read.
struct InputArchiver {
    let workspace: String
    let store: Store
    let statCache: StatCache

    /// Fills `archive` for every workspace source of `inputs`.
    func archive(_ inputs: inout ActionKeyInputs, stage: String) throws(EngineError) {
        for i in inputs.sources.indices where inputs.sources[i].archive == nil {
            guard let tree = inputs.sources[i].tree else { continue }
            inputs.sources[i].archive = try archive(path: inputs.sources[i].path, tree: tree, stage: stage)
        }
    }

    func archive(path: String, tree: Digest, stage: String) throws(EngineError) -> Digest {
        if let known = store.archive(forTree: tree) { return known }
        let full = WorkspaceFiles.join(workspace, path)
        do {
            guard let archive = try ArchiveWriter().store(source: full, in: store).digest else {
                throw EngineError(.store, "stage '\(stage)': archiving its input \(path) gave no digest.")
            }
            // The key was computed from `tree`; an input edited while kiln read it would make the
            // record name bytes the stage never saw.
            guard try TreeHasher.digest(of: full, cache: statCache).digest == tree else {
                throw EngineError(.missingInput, "stage '\(stage)': its input \(path) changed while kiln was reading it. Run again once nothing writes to it.")
            }
            try store.setArchive(archive, forTree: tree)
            return archive
        } catch let error as EngineError {
            throw error
        } catch let error as StoreError {
            throw EngineError(.store, "stage '\(stage)': cannot keep a copy of its input \(path) in the cache: \(error.message)")
        } catch {
            throw EngineError(.store, "stage '\(stage)': cannot keep a copy of its input \(path): \(error)")
        }
    }
}

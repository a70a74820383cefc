#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import KilnStore

/// The runs a cache holds (`cache/runs/<id>` → record blob): writing a record, listing them, and
/// resolving what a user names a run by — its id, a unique prefix of it, or `latest`.
public struct RunCatalog: Sendable {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    /// A run as listed: its id and record.
    public struct Entry: Sendable {
        public var id: String
        public var digest: Digest
        public var record: RunRecord
    }

    /// Stores `record` and names it; returns the run id: the shortest prefix (12 hex digits or
    /// more) of the record's digest that no other run uses.
    public func add(_ record: RunRecord) throws(StoreError) -> String {
        var record = record
        // Stages whose action result did not name a detail blob (failed ones, results from
        // before details) get theirs now.
        for i in record.stages.indices where record.stages[i].argv != nil
            && (record.stages[i].detail.map { !store.contains($0) } ?? true) {
            record.stages[i].detail = try store.put(bytes: RunRecord.json(record.stages[i].detailPart))
        }
        let d = try store.put(bytes: record.encoded())
        var length = 12
        while true {
            let id = String(d.hex.prefix(length))
            if let existing = try store.run(id), existing != d {
                length += 4
                continue
            }
            try store.addRun(id, record: d)
            return id
        }
    }

    public func ids() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: store.runsDirectory)) ?? []).filter { !$0.hasPrefix(".") }
    }

    /// Every readable run, newest first (unreadable ones are left out: `kiln cache verify` names them).
    ///
    /// With `details: false` only the run blobs are read: each stage has its name, status,
    /// times, metrics and gates but not its detail (command, env, inputs, outputs) — what a
    /// listing needs, without reading every stage's detail of every run.
    public func list(details: Bool = true) -> [Entry] {
        ids().compactMap { try? load(id: $0, details: details) }.sorted {
            ($0.record.startedAt, $0.id) > ($1.record.startedAt, $1.id)
        }
    }

    func load(id: String, details: Bool = true) throws(EngineError) -> Entry {
        let digest: Digest?
        do { digest = try store.run(id) } catch { throw EngineError(.store, "cannot read run \(id): \(error.message)") }
        guard let digest else { throw EngineError(.unknownRun, "there is no run \(id) in the cache \(store.root).") }
        let bytes: [UInt8]
        do { bytes = try store.read(digest) } catch {
            throw EngineError(.store, "the record of run \(id) (\(digest)) cannot be read: \(error.message)")
        }
        let decoded = details ? RunRecord.decode(bytes, blob: { try? store.read($0) }) : RunRecord.decodeRunPart(bytes)
        guard let record = decoded else {
            throw EngineError(.store, "the record of run \(id) (\(digest)) is not a kiln run record (\(RunRecord.currentFormat)).")
        }
        return Entry(id: id, digest: digest, record: record)
    }

    /// The run `name` names: `latest`, `latest~N` (the N-th before it), a run id or a unique prefix
    /// of one (at least 4 hex digits).
    public func resolve(_ name: String) throws(EngineError) -> Entry {
        if name == "latest" || name.hasPrefix("latest~") {
            let back = name == "latest" ? 0 : Int(name.dropFirst(7))
            guard let back, back >= 0 else {
                throw EngineError(.unknownRun, "'\(name)' is not a run: write latest, latest~N, or a run id from `kiln runs`.")
            }
            let all = list(details: false)
            guard back < all.count else {
                throw EngineError(.unknownRun, all.isEmpty
                    ? "the cache \(store.root) holds no runs yet: `kiln run` records one."
                    : "'\(name)' goes back further than the \(all.count) runs in the cache.")
            }
            return try load(id: all[back].id)
        }
        let lower = name.lowercased()
        guard lower.count >= 4, lower.allSatisfy(\.isHexDigit) else {
            throw EngineError(.unknownRun, "'\(name)' is not a run id: give at least 4 hex digits of one (see `kiln runs`), or latest.")
        }
        let matches = ids().filter { $0.hasPrefix(lower) }
        guard !matches.isEmpty else { throw EngineError(.unknownRun, "no run id starts with \(lower) in the cache \(store.root); `kiln runs` lists them.") }
        guard matches.count == 1 else {
            throw EngineError(.unknownRun, "\(lower) is the start of \(matches.count) run ids (\(matches.sorted().prefix(4).joined(separator: ", "))…); give more digits.")
        }
        return try load(id: matches[0])
    }

    /// The id of the run with this invocation id, if the cache still holds it.
    public func id(ofInvocation invocation: String) -> String? {
        list(details: false).first { $0.record.invocation == invocation }?.id
    }
}

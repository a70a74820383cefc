import FoundationEssentials
import KilnStore

/// A bundle's manifest: which run it carries and every blob it holds (sorted, record included).
public struct BundleManifest: Codable, Sendable {
    public static let currentFormat = "kiln-bundle-1"
    public var format: String
    public var run: String
    public var record: Digest
    public var blobs: [Digest]
}

extension RunCatalog {
    /// Writes run `entry` and every blob its record names (inputs, outputs, logs, metrics, the
    /// image) to one deterministic bundle at `path`. Returns the blob count and the bundle's size.
    public func export(_ entry: Entry, to path: String) throws(EngineError) -> (blobs: Int, bytes: Int64) {
        let blobs = ([entry.digest] + entry.record.blobs).sorted { $0.hex < $1.hex }
        let missing = blobs.filter { !store.contains($0) }
        guard missing.isEmpty else {
            throw EngineError(.badRecord, "run \(entry.id) names \(missing.count) blob(s) the cache no longer holds (\(missing.prefix(3).map(\.description).joined(separator: ", "))); it cannot be exported whole. `kiln cache verify` checks the cache.")
        }
        let manifest = BundleManifest(format: BundleManifest.currentFormat, run: entry.id, record: entry.digest, blobs: blobs)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = Array((try? encoder.encode(manifest)) ?? Data())
        do {
            let size = try store.withLock(.shared) { () throws(StoreError) in
                try RunBundle.write(manifest: bytes, blobs: blobs, from: store, to: path)
            }
            return (blobs.count, size)
        } catch {
            throw EngineError(error.code == .corrupt ? .badRecord : .store, "cannot export run \(entry.id): \(error.message)")
        }
    }

    /// Imports a bundle: every blob's digest is checked and the record must name only blobs the
    /// bundle (or the cache) holds before anything enters the cache; then the blobs and the run
    /// are added. Returns the run id and how many blobs were new.
    public func importBundle(_ path: String) throws(EngineError) -> (id: String, blobs: Int, new: Int) {
        let staged: StagedBundle
        do { staged = try RunBundle.stage(path, in: store) } catch {
            throw EngineError(error.code == .noSpace || error.code == .io ? .store : .badRecord, error.message)
        }
        defer { staged.discard() }
        func refuse(_ why: String) -> EngineError {
            EngineError(.badRecord, "refused the bundle \(path): \(why); nothing was imported.")
        }
        guard let manifestBytes = staged.manifest,
              let manifest = try? JSONDecoder().decode(BundleManifest.self, from: Data(manifestBytes)) else {
            throw refuse("its \(RunBundle.manifestName) is not a kiln bundle manifest")
        }
        guard manifest.format == BundleManifest.currentFormat else {
            throw refuse("it is format \(manifest.format); this kiln reads \(BundleManifest.currentFormat)")
        }
        let held = staged.digests
        if let absent = manifest.blobs.first(where: { !held.contains($0) }) {
            throw refuse("its manifest lists blob \(absent), which the bundle does not hold (truncated or edited)")
        }
        if let extra = held.first(where: { !manifest.blobs.contains($0) }) {
            throw refuse("it holds blob \(extra), which its manifest does not list")
        }
        let store = self.store
        guard let recordBytes = staged.read(manifest.record),
              let record = RunRecord.decode(recordBytes, blob: { staged.read($0) ?? (try? store.read($0)) }) else {
            throw refuse("its run record \(manifest.record) is missing, is not a \(RunRecord.currentFormat) record, or names a stage detail the bundle lacks")
        }
        for d in record.blobs where !held.contains(d) && !store.contains(d) {
            throw refuse("the run record names blob \(d) (\(Self.describe(d, in: record))), which neither the bundle nor this cache holds")
        }
        let new = held.filter { !store.contains($0) }.count
        let lower = manifest.run.lowercased()
        let id = lower.count >= 12 && manifest.record.hex.hasPrefix(lower) ? lower : String(manifest.record.hex.prefix(12))
        do {
            return try store.withLock(.shared) { () throws(StoreError) in
                try staged.commit(to: store)
                if let existing = try store.run(id), existing == manifest.record { return (id, held.count, new) }
                var length = id.count
                while let existing = try store.run(String(manifest.record.hex.prefix(length))), existing != manifest.record { length += 4 }
                let final = String(manifest.record.hex.prefix(length))
                try store.addRun(final, record: manifest.record)
                return (final, held.count, new)
            }
        } catch {
            throw EngineError(.store, "cannot import \(path) into \(store.root): \(error.message)")
        }
    }

    /// Where a record uses blob `d`, for messages (`output model.pkl of stage train`).
    static func describe(_ d: Digest, in record: RunRecord) -> String {
        for s in record.stages {
            for (path, o) in s.outputs ?? [:] where o.archive == d { return "output \(path) of stage \(s.name)" }
            for i in s.inputs ?? [] where i.archive == d { return "input \(i.path) of stage \(s.name)" }
            if s.stdout == d || s.stderr == d { return "logs of stage \(s.name)" }
            if s.metricsBlob == d { return "metrics of stage \(s.name)" }
        }
        return "the image"
    }
}

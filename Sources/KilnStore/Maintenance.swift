#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization
// `struct stat` is owned by CArchive once it is imported anywhere (archive.h includes sys/stat.h).
import CArchive
import SystemPackage

/// One blob on disk.
public struct BlobInfo: Sendable {
    public var digest: Digest
    public var size: Int64
    /// Modification time, ns since 1970.
    public var mtime: Int64
}

/// `kiln cache stats`.
public struct StoreStats: Sendable {
    public struct Count: Sendable {
        public var count = 0
        public var bytes: Int64 = 0
        public init(count: Int = 0, bytes: Int64 = 0) {
            self.count = count
            self.bytes = bytes
        }
    }
    /// Blobs by what they hold: `archive` (tar), `json` (records, results), `other` (logs, …).
    public var blobs: [String: Count] = [:]
    public var actionResults = Count()
    public var runs = Count()
    public var refs = Count()
    public var quarantined = Count()
    public var temporary = Count()
    public var statCache = Count()

    public var totalBlobs: Count {
        blobs.values.reduce(into: Count()) { $0.count += $1.count; $0.bytes += $1.bytes }
    }
}

/// What `gc` keeps (see `Store.collectGarbage`).
public struct GCPolicy: Sendable {
    /// Keep the newest N runs (by the mtime of `runs/<id>`) whatever their age.
    public var keepLast: Int?
    /// Drop runs and action results older than this many seconds (unless kept by `keepLast`).
    public var olderThan: Int64?
    /// After that, drop the oldest runs and action results until what is kept fits in this many bytes.
    public var maxSize: Int64?
    public var dryRun = false

    public init(keepLast: Int? = nil, olderThan: Int64? = nil, maxSize: Int64? = nil, dryRun: Bool = false) {
        self.keepLast = keepLast
        self.olderThan = olderThan
        self.maxSize = maxSize
        self.dryRun = dryRun
    }

    /// `30d`, `12h`, `90m`, `45s`, `2w` → seconds.
    public static func parseDuration(_ text: String) throws(StoreError) -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
        guard let unit = text.last, let scale = units[unit], let n = Int64(text.dropLast()), n >= 0 else {
            throw StoreError(.invalidArgument, "'\(text)' is not a duration: write a whole number and a unit, s, m, h, d or w (for example 30d).")
        }
        return n * scale
    }

    /// `20G`, `500M`, `1T`, `4096`, `20GB`, `20GiB` → bytes (powers of 1024).
    public static func parseSize(_ text: String) throws(StoreError) -> Int64 {
        var t = Substring(text.uppercased())
        if t.hasSuffix("IB") { t = t.dropLast(2) } else if t.hasSuffix("B") && t.count > 1 && !t.dropLast().allSatisfy(\.isNumber) { t = t.dropLast() }
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var scale: Int64 = 1
        if let u = t.last, let s = units[u] {
            scale = s
            t = t.dropLast()
        } else if t.hasSuffix("B") {
            t = t.dropLast()
        }
        guard let n = Double(t), n >= 0, n.isFinite else {
            throw StoreError(.invalidArgument, "'\(text)' is not a size: write a number and an optional unit, K, M, G or T (powers of 1024; for example 20G).")
        }
        return Int64(n * Double(scale))
    }
}

/// What `gc` did (or, with `dryRun`, would do).
public struct GCReport: Sendable {
    public var removedBlobs: [BlobInfo] = []
    public var removedRuns: [String] = []
    public var removedActionResults: [Digest] = []
    public var keptBlobs = 0
    public var keptBytes: Int64 = 0
    public var freedBytes: Int64 { removedBlobs.reduce(0) { $0 + $1.size } }
}

/// `verify`'s findings.
public struct VerifyReport: Sendable {
    public var checked = 0
    public var bytes: Int64 = 0
    /// Corrupt blobs and where they were moved (`quarantine/<hex>`).
    public var corrupt: [(digest: Digest, actual: Digest, movedTo: String)] = []
    /// Files in `cas/` that are not named like a blob.
    public var strays: [String] = []
}

extension Store {
    /// Every blob in `cas/sha256/`, and the paths that do not belong there.
    public func listBlobs() throws(StoreError) -> (blobs: [BlobInfo], strays: [String]) {
        var blobs: [BlobInfo] = []
        var strays: [String] = []
        for fan in try Sys.listDirectory(casDirectory).sorted() {
            let dir = Sys.join(casDirectory, fan)
            guard Sys.isDirectory(dir) else {
                strays.append(dir)
                continue
            }
            for name in try Sys.listDirectory(dir).sorted() {
                let path = Sys.join(dir, name)
                guard let d = Digest(hex: name), name.hasPrefix(fan), case .success(let st) = Sys.lstat(path),
                    st.st_mode & S_IFMT == S_IFREG
                else {
                    strays.append(path)
                    continue
                }
                blobs.append(BlobInfo(digest: d, size: Int64(st.st_size), mtime: Sys.nanos(st.st_mtim)))
            }
        }
        return (blobs, strays)
    }

    /// Entries, bytes and kinds.
    public func stats() throws(StoreError) -> StoreStats {
        var s = StoreStats()
        for b in try listBlobs().blobs {
            let kind = blobKind(b.digest)
            s.blobs[kind, default: .init()].count += 1
            s.blobs[kind, default: .init()].bytes += b.size
        }
        func count(_ dir: String) -> StoreStats.Count {
            var c = StoreStats.Count()
            for f in files(under: dir) {
                c.count += 1
                c.bytes += f.size
            }
            return c
        }
        s.actionResults = count(acDirectory)
        s.runs = count(runsDirectory)
        s.refs = count(refsDirectory)
        s.quarantined = count(quarantineDirectory)
        s.temporary = count(tmpDirectory)
        if case .success(let st) = Sys.lstat(statCachePath) {
            s.statCache = .init(count: 1, bytes: Int64(st.st_size))
        }
        return s
    }

    /// `archive` when the blob is a tar (ustar magic at byte 257), `json` when it starts with `{`
    /// or `[`, else `other`.
    func blobKind(_ d: Digest) -> String {
        let fd = open(blobPath(d), O_RDONLY | O_CLOEXEC)
        if fd < 0 { return "other" }
        defer { Sys.close(fd) }
        var head = [UInt8](repeating: 0, count: 512)
        let n = head.withUnsafeMutableBytes { (try? Sys.readFull(fd, $0, path: "")) ?? 0 }
        if n >= 262 && Array(head[257..<262]) == Array("ustar".utf8) { return "archive" }
        if let first = head[0..<n].first(where: { ![9, 10, 13, 32].contains($0) }), first == 123 || first == 91 { return "json" }
        return "other"
    }

    /// Regular files under `dir`, recursively: path relative to `dir`, size, mtime.
    func files(under dir: String) -> [(name: String, size: Int64, mtime: Int64)] {
        var out: [(String, Int64, Int64)] = []
        func walk(_ rel: String) {
            let path = rel.isEmpty ? dir : Sys.join(dir, rel)
            guard let names = try? Sys.listDirectory(path) else { return }
            for n in names.sorted() {
                let r = rel.isEmpty ? n : rel + "/" + n
                guard case .success(let st) = Sys.lstat(Sys.join(dir, r)) else { continue }
                if st.st_mode & S_IFMT == S_IFDIR {
                    walk(r)
                } else {
                    out.append((r, Int64(st.st_size), Sys.nanos(st.st_mtim)))
                }
            }
        }
        walk("")
        return out
    }

    /// Rehashes every blob on all cores; corrupt ones are moved to `quarantine/` (never served again).
    public func verifyAll() throws(StoreError) -> VerifyReport {
        let (blobs, strays) = try listBlobs()
        var report = VerifyReport()
        report.strays = strays
        let results = UnsafeMutableBufferPointer<Digest?>.allocate(capacity: blobs.count)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        nonisolated(unsafe) let out = results
        let next = Atomic<Int>(0)
        let workers = max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), blobs.count))
        let paths = blobs.map { Array(blobPath($0.digest).utf8) + [0] }
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if k >= paths.count { break }
                out[k] = try? TreeHasher.hashFile(paths[k], display: "", buffer: buffer).0
            }
        }
        if !blobs.isEmpty { try Sys.makeDirectories(quarantineDirectory) }
        for (k, b) in blobs.enumerated() {
            report.checked += 1
            report.bytes += b.size
            guard let actual = results[k] else { continue }  // vanished meanwhile (gc)
            if actual != b.digest {
                let dest = Sys.join(quarantineDirectory, b.digest.hex)
                try Sys.call("move \(blobPath(b.digest)) to", dest) { rename(blobPath(b.digest), dest) }
                report.corrupt.append((b.digest, actual, dest))
            }
        }
        return report
    }

    /// Every `sha256:HEX` named in some bytes (JSON or plain text).
    static func digests(in bytes: [UInt8]) -> [Digest] {
        let prefix = Array(Digest.prefix.utf8)
        var out: [Digest] = []
        var i = 0
        let n = bytes.count
        while i + prefix.count + 64 <= n {
            if bytes[i] == prefix[0] && Array(bytes[i..<(i + prefix.count)]) == prefix {
                let start = i + prefix.count
                if let d = Digest(hex: String(decoding: bytes[start..<(start + 64)], as: UTF8.self)) {
                    out.append(d)
                    i = start + 64
                    continue
                }
            }
            i += 1
        }
        return out
    }

    /// Deletes what no kept root reaches.
    ///
    /// **Roots**: every ref (`refs/**`); every run (`runs/<id>`) that the policy keeps; every action
    /// result (`ac/`) that the policy keeps. **Reaching**: a root reaches each `sha256:HEX` its file
    /// names; a reached blob that is JSON (first byte `{` or `[`, at most 64 MiB) reaches every digest
    /// it names in turn, so a run record keeps its logs, archives and other records.
    ///
    /// **Policy**: a run is dropped when it is older than `olderThan` (if given) and is not one of
    /// the `keepLast` newest (if given); with only `keepLast`, all but the newest N runs are dropped;
    /// with neither, no run is. Action results are dropped when older than `olderThan` (their mtime is
    /// refreshed on every cache hit). Then, if what is kept exceeds `maxSize`, the oldest remaining
    /// runs and action results are dropped, oldest first (never the `keepLast` newest runs, never
    /// refs), until it fits. Blobs nobody reaches are deleted. Roots are deleted before blobs, so a
    /// crash half-way never leaves a root naming a missing blob.
    ///
    /// Runs under the store's exclusive lock: writers (which hold it shared while they store blobs
    /// and name them) wait, so nothing written concurrently is collected half-named.
    public func collectGarbage(_ policy: GCPolicy, now: Int64? = nil) throws(StoreError) -> GCReport {
        let now = now ?? Sys.now()
        return try withLock(.exclusive) { () throws(StoreError) in
            TempFile.cleanStale(in: tmpDirectory)
            return try collectLocked(policy, now: now)
        }
    }

    private func collectLocked(_ policy: GCPolicy, now: Int64) throws(StoreError) -> GCReport {
        let (blobs, _) = try listBlobs()
        var sizes: [Digest: Int64] = [:]
        for b in blobs { sizes[b.digest] = b.size }

        struct Root {
            var kind: Int  // 0 ref, 1 run, 2 action result
            var name: String
            var mtime: Int64
            var digests: [Digest]
            var protected: Bool
        }
        var roots: [Root] = []
        for f in files(under: refsDirectory) {
            let bytes = (try? readSmall(Sys.join(refsDirectory, f.name))) ?? nil
            roots.append(Root(kind: 0, name: f.name, mtime: f.mtime, digests: Store.digests(in: bytes ?? []), protected: true))
        }
        let runs = files(under: runsDirectory).sorted { ($0.mtime, $0.name) > ($1.mtime, $1.name) }
        let olderThanNs = policy.olderThan.map { $0 * 1_000_000_000 }
        var dropped: [Root] = []
        for (i, f) in runs.enumerated() {
            let bytes = (try? readSmall(Sys.join(runsDirectory, f.name))) ?? nil
            let protected = policy.keepLast.map { i < $0 } ?? false
            let old = olderThanNs.map { now - f.mtime > $0 }
            let drop: Bool
            switch (policy.keepLast, old) {
            case (nil, nil): drop = false
            case (_?, nil): drop = !protected
            case (_, let old?): drop = old && !protected
            }
            let root = Root(kind: 1, name: f.name, mtime: f.mtime, digests: Store.digests(in: bytes ?? []), protected: protected)
            if drop { dropped.append(root) } else { roots.append(root) }
        }
        for f in files(under: acDirectory) {
            let bytes = (try? readSmall(Sys.join(acDirectory, f.name))) ?? nil
            let root = Root(kind: 2, name: f.name, mtime: f.mtime, digests: Store.digests(in: bytes ?? []), protected: false)
            if let olderThanNs, now - f.mtime > olderThanNs { dropped.append(root) } else { roots.append(root) }
        }

        var childrenCache: [Digest: [Digest]] = [:]
        func children(_ d: Digest) -> [Digest] {
            if let c = childrenCache[d] { return c }
            var c: [Digest] = []
            if let size = sizes[d], size <= 64 << 20, blobKind(d) == "json", let bytes = try? read(d) {
                c = Store.digests(in: bytes)
            }
            childrenCache[d] = c
            return c
        }
        func mark(_ roots: ArraySlice<Root>) -> Set<Digest> {
            var seen = Set<Digest>()
            var stack = roots.flatMap(\.digests)
            while let d = stack.popLast() {
                guard sizes[d] != nil, seen.insert(d).inserted else { continue }
                stack += children(d)
            }
            return seen
        }
        func bytes(_ set: Set<Digest>) -> Int64 { set.reduce(0) { $0 + sizes[$1]! } }

        // Fixed roots first (refs, protected runs), then the droppable ones oldest first.
        roots.sort { a, b in
            let fa = a.kind == 0 || a.protected, fb = b.kind == 0 || b.protected
            if fa != fb { return fa }
            return (a.mtime, a.name) < (b.mtime, b.name)
        }
        var marked = mark(roots[...])
        if let max = policy.maxSize, bytes(marked) > max {
            let firstDroppable = roots.firstIndex { !($0.kind == 0 || $0.protected) } ?? roots.count
            // Drop the k oldest droppable roots; the smallest k that fits, by bisection (monotone).
            var lo = 0, hi = roots.count - firstDroppable
            while lo < hi {
                let k = (lo + hi) / 2
                var kept = Array(roots[..<firstDroppable])
                kept += roots[(firstDroppable + k)...]
                if bytes(mark(kept[...])) <= max { hi = k } else { lo = k + 1 }
            }
            dropped += roots[firstDroppable..<(firstDroppable + lo)]
            roots.removeSubrange(firstDroppable..<(firstDroppable + lo))
            marked = mark(roots[...])
        }

        var report = GCReport()
        for b in blobs {
            if marked.contains(b.digest) {
                report.keptBlobs += 1
                report.keptBytes += b.size
            } else {
                report.removedBlobs.append(b)
            }
        }
        for r in dropped {
            if r.kind == 1 { report.removedRuns.append(r.name) }
            if r.kind == 2, let d = Digest(hex: Sys.basename(r.name)) { report.removedActionResults.append(d) }
        }
        if policy.dryRun { return report }
        for r in dropped {
            let path = Sys.join(r.kind == 1 ? runsDirectory : acDirectory, r.name)
            _ = unlink(path)
        }
        for b in report.removedBlobs {
            let path = blobPath(b.digest)
            if unlink(path) != 0 && Glibc.errno != ENOENT {
                throw StoreError.system("delete blob", path, Errno(rawValue: Glibc.errno))
            }
        }
        pruneImageRoots()
        pruneTreeIndex(keeping: marked)
        return report
    }

    /// Drops `trees/` entries (input tree → archive) whose archive was just collected: the index
    /// is derived, and a stale entry would only cost a lookup before archiving again.
    private func pruneTreeIndex(keeping kept: Set<Digest>) {
        for f in files(under: treesDirectory) {
            let path = Sys.join(treesDirectory, f.name)
            guard let bytes = (try? readSmall(path)) ?? nil,
                  let d = Digest(String(decoding: bytes, as: UTF8.self).trimmingTrailingNewlines()) else { continue }
            if !kept.contains(d) { _ = unlink(path) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
// `struct stat` is owned by CArchive once it is imported anywhere (archive.h includes sys/stat.h).
import CArchive
import SystemPackage

/// The hash (stat) cache: (device, inode, size, mtime ns, ctime ns) → digest, so an unchanged file
/// costs one `lstat` instead of a read.
///
/// **Racy-clean rule** (git's): a file modified in the same timestamp tick as, or after, the moment
/// the cache learnt its digest could change again without its timestamps changing. So a digest is
/// only remembered when the file's mtime *and* ctime are strictly older than `reference`, the
/// kernel's coarse real-time clock (`CLOCK_REALTIME_COARSE`, what file timestamps are taken from)
/// read when this cache was opened, before any file was read. Such files are simply hashed again
/// next time (and remembered then, once they are old enough).
///
/// File `cache/statcache`: 16-byte header `KILNSTAT` + UInt32 version (1) + UInt32 record size (72),
/// then records of five little-endian 64-bit words (dev, ino, size, mtime ns, ctime ns) and the 32
/// digest bytes. It is rewritten whole (temp file + rename) when something new was learnt, merged
/// with what other processes saved meanwhile; losing an update only costs a rehash.
public final class StatCache: Sendable {
    struct Value {
        var size: Int64, mtime: Int64, ctime: Int64
        var digest: Digest
    }
    struct Key: Hashable {
        var dev: UInt64, ino: UInt64
    }

    /// Where it is saved (nil: in memory only).
    public let path: String?
    let reference: Int64
    private let state: Mutex<(map: [Key: Value], learnt: [Key: Value])>

    static let magic = Array("KILNSTAT".utf8)
    static let recordSize = 72
    /// Past this many remembered files, a save keeps only what this process used or learnt.
    static let maxEntries = 2_000_000

    /// Opens the cache saved at `path` (missing or unreadable: starts empty), or an in-memory one.
    public init(path: String?) {
        self.path = path
        var ts = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        reference = Sys.nanos(ts)
        let map = path.map { StatCache.load($0) } ?? [:]
        state = Mutex((map, [:]))
    }

    func lookup(_ k: StatKey) -> Digest? {
        state.withLock { s in
            guard let v = s.map[Key(dev: k.dev, ino: k.ino)], v.size == k.size, v.mtime == k.mtime, v.ctime == k.ctime
            else { return nil }
            return v.digest
        }
    }

    func record(_ k: StatKey, _ d: Digest) {
        guard k.mtime < reference && k.ctime < reference else { return }  // racily clean: do not trust later
        let v = Value(size: k.size, mtime: k.mtime, ctime: k.ctime, digest: d)
        state.withLock { s in
            s.map[Key(dev: k.dev, ino: k.ino)] = v
            s.learnt[Key(dev: k.dev, ino: k.ino)] = v
        }
    }

    /// How many digests were learnt since opening (what `save` would add).
    public var learntCount: Int { state.withLock { $0.learnt.count } }

    /// Saves what was learnt, merged with the file's current content. Errors are reported, not fatal.
    public func save(tmpDirectory: String) throws(StoreError) {
        guard let path else { return }
        let learnt = state.withLock { $0.learnt }
        if learnt.isEmpty { return }
        var merged = StatCache.load(path)
        if merged.count + learnt.count > StatCache.maxEntries { merged = state.withLock { $0.map } }
        for (k, v) in learnt { merged[k] = v }
        var bytes = [UInt8]()
        bytes.reserveCapacity(16 + merged.count * StatCache.recordSize)
        bytes += StatCache.magic
        appendLE(&bytes, UInt64(1) | UInt64(StatCache.recordSize) << 32)
        for (k, v) in merged {
            appendLE(&bytes, k.dev)
            appendLE(&bytes, k.ino)
            appendLE(&bytes, UInt64(bitPattern: v.size))
            appendLE(&bytes, UInt64(bitPattern: v.mtime))
            appendLE(&bytes, UInt64(bitPattern: v.ctime))
            bytes += v.digest.bytes
        }
        let tmp = try TempFile(in: tmpDirectory, prefix: "statcache")
        do throws(StoreError) {
            try withBytes(bytes) { (b) throws(StoreError) in try Sys.writeAll(tmp.fd, b, path: tmp.path) }
            try tmp.commit(to: path, sync: false)
        } catch {
            tmp.discard()
            throw error
        }
        state.withLock { $0.learnt = [:] }
    }

    private func appendLE(_ bytes: inout [UInt8], _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes += $0 }
    }

    static func load(_ path: String) -> [Key: Value] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return [:] }
        defer { Sys.close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, st.st_size >= 16 else { return [:] }
        let size = Int(st.st_size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        guard let n = try? Sys.readFull(fd, buffer, path: path), n == size else { return [:] }
        guard Array(buffer[0..<8]) == magic,
            UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) == UInt64(1) | UInt64(recordSize) << 32
        else { return [:] }
        let count = (size - 16) / recordSize
        var map = [Key: Value](minimumCapacity: count)
        for r in 0..<count {
            let o = 16 + r * recordSize
            func word(_ i: Int) -> UInt64 { UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: o + 8 * i, as: UInt64.self)) }
            let d = Digest(bytes: UnsafeRawBufferPointer(rebasing: buffer[(o + 40)..<(o + 72)]))
            map[Key(dev: word(0), ino: word(1))] = Value(
                size: Int64(bitPattern: word(2)), mtime: Int64(bitPattern: word(3)), ctime: Int64(bitPattern: word(4)), digest: d)
        }
        return map
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// SHA-256 on a second thread: `update` copies the chunk into one of a few slots and returns,
/// so hashing overlaps the caller's reads and writes (a bundle's export and import, where hashing
/// 1 GiB inline cost as much as the copy itself). Chunks are hashed in order.
final class ParallelHasher: @unchecked Sendable {
    private let slotSize: Int
    private let slots: [UnsafeMutableRawBufferPointer]
    private var lengths: [Int]
    private let free: DispatchSemaphore
    private let filled = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var next = 0
    private var hasher = Hasher256()
    private static let finish = -1

    init(slots count: Int = 8, slotSize: Int = 128 << 10) {
        self.slotSize = slotSize
        slots = (0..<count).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: slotSize, alignment: 64) }
        lengths = Array(repeating: 0, count: count)
        // Created at 0 and raised: libdispatch traps when a semaphore is freed below its initial value.
        free = DispatchSemaphore(value: 0)
        for _ in 0..<count { free.signal() }
        let worker = Thread { [self] in work() }
        worker.start()
    }

    deinit { for s in slots { s.deallocate() } }

    private func work() {
        var i = 0
        while true {
            filled.wait()
            let n = lengths[i]
            if n == Self.finish { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: slots[i][0..<n]))
            free.signal()
            i = (i + 1) % slots.count
        }
        done.signal()
    }

    func update(_ chunk: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < chunk.count {
            let n = min(slotSize, chunk.count - offset)
            free.wait()
            slots[next].copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[offset..<(offset + n)]))
            lengths[next] = n
            next = (next + 1) % slots.count
            filled.signal()
            offset += n
        }
    }

    /// Waits for the worker; the hasher must not be used afterwards.
    func finalize() -> Digest {
        free.wait()
        lengths[next] = Self.finish
        filled.signal()
        done.wait()
        return hasher.finalize()
    }
}

/// A detached pthread running a closure (FoundationEssentials has no Thread).
private final class Thread: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
    func start() {
        var tid = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&tid, nil, { raw in
            let me = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box)
        pthread_detach(tid)
    }
}

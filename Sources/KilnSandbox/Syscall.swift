#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// Every raw system call of KilnSandbox goes through here: retries `EINTR` and turns −1 into a
/// thrown `Errno`, as swift-system and SwiftNIO do.
@inline(__always)
func syscallRetrying<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Errno(rawValue: errno)
        if error != .interrupted { throw error }
    }
}

/// Reads a whole (small) file, such as a /proc or cgroup file. Returns nil if it cannot be read.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes `text` to an existing file (a cgroup or /proc control file).
func writeControlFile(_ path: String, _ text: String) throws(Errno) {
    let fd = try syscallRetrying { open(path, O_WRONLY | O_CLOEXEC) }
    defer { close(fd) }
    var utf8 = Array(text.utf8)
    let count = utf8.count
    let written = try syscallRetrying { utf8.withUnsafeMutableBytes { write(fd, $0.baseAddress, count) } }
    if written != count { throw Errno.ioError }
}

/// The monotonic clock, in seconds.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

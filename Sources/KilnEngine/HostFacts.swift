#if canImport(Glibc)
import Glibc
#endif
import KilnStore

/// What a run record says about the machine (DESIGN.md, Run record): enough to tell why a replay
/// elsewhere may differ. Read from uname, /proc and os-release; each costs a few microseconds.
public struct HostFacts: Codable, Sendable, Equatable {
    public var kernel: String
    public var arch: String
    public var cpuModel: String
    /// The CPU's feature flags (what numeric kernels may pick code paths by).
    public var cpuFlags: String
    public var cores: Int
    public var memoryBytes: UInt64
    public var libc: String
    public var distro: String
    public var kilnVersion: String
    /// The host toolchain fingerprint (`image: host` stages' keys hold it).
    public var fingerprint: Digest

    public static func current(kilnVersion: String, fingerprint: Digest) -> HostFacts {
        var u = utsname()
        uname(&u)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        let cpuinfo = read("/proc/cpuinfo")
        func cpuField(_ name: String) -> String {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") {
                    return line[line.index(after: colon)...].trimmingCharacters(in: " \t")
                }
            }
            return ""
        }
        var memory: UInt64 = 0
        for line in read("/proc/meminfo").split(separator: "\n") where line.hasPrefix("MemTotal:") {
            memory = (UInt64(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        var distro = ""
        for line in read("/etc/os-release").split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            distro = line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: "\"")
        }
        return HostFacts(
            kernel: "\(field(u.sysname)) \(field(u.release)) \(field(u.version))", arch: field(u.machine),
            cpuModel: cpuField("model name"), cpuFlags: cpuField("flags"),
            cores: max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))), memoryBytes: memory,
            libc: libcVersion(), distro: distro,
            kilnVersion: kilnVersion, fingerprint: fingerprint)
    }

    /// `glibc 2.36`, from confstr (the header with gnu_get_libc_version is not in the Glibc module).
    static func libcVersion() -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = confstr(Int32(_CS_GNU_LIBC_VERSION), &buffer, buffer.count)
        return n > 0 ? String(cString: buffer) : "unknown"
    }

    /// The whole file, read until EOF (/proc files report size 0).
    static func read(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { out += buffer[..<n] } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

import Foundation

/// A fresh directory under the system's temporary directory, removed (with everything in it, even
/// read-only parts) when the value is released.
public final class ScratchDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "kiln-test") {
        var template = Array(("/tmp/\(label)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(errno)")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path/relative`.
    public func callAsFunction(_ relative: String) -> String {
        relative.isEmpty ? path : path + "/" + relative
    }

    deinit {
        _ = ChildProcess.run("/bin/chmod", ["-R", "u+rwx", path])
        try? FileManager.default.removeItem(atPath: path)
    }
}

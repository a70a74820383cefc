/// The Debian packages installed in an image tree, from `var/lib/dpkg/status`.
public enum DebianPackages {
    public struct Package: Sendable, Equatable, Codable {
        public var name: String
        public var version: String
        public var architecture: String?
    }

    /// Installed packages (`Status: install ok installed`) sorted by name; nil when the tree has no
    /// dpkg status file.
    public static func installed(inTree root: String) -> [Package]? {
        guard let bytes = ImageSource.readFile(root + "/var/lib/dpkg/status") else { return nil }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    static func parse(_ text: String) -> [Package] {
        var out: [Package] = []
        for paragraph in text.split(separator: "\n\n", omittingEmptySubsequences: true) {
            var fields: [Substring: Substring] = [:]
            for line in paragraph.split(separator: "\n") where !line.hasPrefix(" ") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[line[..<colon]] = line[line.index(after: colon)...].drop(while: { $0 == " " })
            }
            guard let name = fields["Package"], fields["Status"]?.hasSuffix(" installed") == true else { continue }
            out.append(Package(name: String(name), version: String(fields["Version"] ?? ""), architecture: fields["Architecture"].map(String.init)))
        }
        return out.sorted { $0.name < $1.name }
    }
}

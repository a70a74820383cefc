import KilnImage
import KilnStore

/// `mmdebstrap` into the cache's tmp/, then import: for `kiln image build` and `kiln image lock`.
enum DebianImageBuilder {
    static func build(_ images: ImageStore, name: String, suite: String, packages: [String], mirror: String?) throws(StoreError) -> ResolvedImage {
        guard let tool = ProcessRunner.find("mmdebstrap") else {
            throw StoreError(.notFound, "mmdebstrap is not installed: install it with `apt-get install mmdebstrap`, then build again.")
        }
        let staging = try images.store.makeStagingDirectory(prefix: "image-build")
        defer { staging.remove() }
        let output = staging.path + "/rootfs.tar"
        var argv = [tool, "--variant=minbase", "--format=tar"]
        if !packages.isEmpty { argv.append("--include=" + packages.joined(separator: ",")) }
        argv += [suite, output]
        if let mirror { argv.append(mirror) }
        storeErrorLine("kiln: building debian:\(suite)\(packages.isEmpty ? "" : " with \(packages.joined(separator: ", "))"): \(argv.joined(separator: " "))")
        let (status, tail) = ProcessRunner.run(argv, environment: ["SOURCE_DATE_EPOCH": "0"]) { line in storeErrorLine("  \(line)") }
        guard status == 0 else {
            throw StoreError(.notFound, "mmdebstrap failed (exit status \(status)): \(BuildFailure.explain(tail, packages: packages, mirror: mirror))")
        }
        let description = "mmdebstrap debian:\(suite)" + (packages.isEmpty ? "" : " +" + packages.joined(separator: ","))
        return try images.importImage(from: output, name: name, createdFrom: "mmdebstrap", describedAs: description) { line in storeErrorLine("kiln: \(line)") }
    }
}

/// Turns mmdebstrap's last lines into what went wrong.
enum BuildFailure {
    static func explain(_ lines: [String], packages: [String], mirror: String?) -> String {
        for line in lines {
            if let range = line.firstRange(of: "Unable to locate package ") {
                let package = line[range.upperBound...].trimmingSpaces()
                return "the package '\(package)' does not exist in the suite. Check its name (apt-cache search \(package)) and --from."
            }
            if line.contains("has no installation candidate") || line.contains("Depends:") && line.contains("but it is not") {
                return "a package cannot be installed: \(line.trimmingSpaces()). Check --packages."
            }
            if line.contains("Could not resolve") || line.contains("Temporary failure resolving") || line.contains("Failed to fetch") || line.contains("Connection failed") || line.contains("Unable to connect") {
                return "the mirror \(mirror ?? "deb.debian.org") cannot be reached: \(line.trimmingSpaces()). Check the network or give a reachable mirror with --mirror URL."
            }
        }
        let last = lines.suffix(5).joined(separator: " | ")
        return last.isEmpty ? "it printed nothing; run it by hand to see why." : "its last lines: \(last)"
    }
}

import KilnSandbox
import KilnStore

/// A recipe as written, types checked but nothing interpolated, expanded or cross-checked yet.
struct RawRecipe {
    struct RawParam {
        var name: String
        var value: ParamValue
        var mark: Mark
    }

    struct MatrixVariable {
        var name: String
        var values: [(value: ParamValue, mark: Mark)]
        var mark: Mark
    }

    enum Run {
        case shell(Diagnostics.Text)
        case argv([Diagnostics.Text])
    }

    struct RawStage {
        var name: String
        var mark: Mark
        var run: Run?
        var env: [(name: String, value: Diagnostics.Text)] = []
        var inputs: [Diagnostics.Text] = []
        var outputs: [Diagnostics.Text] = []
        var metrics: Diagnostics.Text?
        var gates: [Diagnostics.Text] = []
        var cpus = 1
        var memoryBytes: UInt64?
        var timeoutSeconds: Double?
        var network = NetworkMode.none
        var image: ImageReference?
        var matrix: [MatrixVariable] = []
    }

    var version = 1
    var name: String?
    var image = ImageReference.host
    /// `image: {build: …}`, with `name` empty when the recipe gave none.
    var imageBuild: ImageBuildSpec?
    var env: [(name: String, value: Diagnostics.Text)] = []
    var params: [RawParam] = []
    var stages: [RawStage] = []

    static let topKeys = ["kiln", "name", "image", "env", "params", "stages"]
    static let stageKeys = ["run", "inputs", "outputs", "metrics", "gates", "cpus", "memory", "timeout", "network", "env", "matrix", "image"]
    static let supportedVersions = [1]
    /// Variants one matrix stage may expand into.
    static let maxVariants = 10_000

    /// Decodes the root node, recording every problem in `d`.
    init(_ root: YAMLNode, _ d: inout Diagnostics) {
        guard let entries = d.mapping(root, "a recipe") else { return }
        d.checkKeys(entries, allowed: Self.topKeys, in: "the recipe")
        let byKey = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })

        if let entry = byKey["kiln"] {
            if case .int(let v)? = entry.value.scalar?.resolved, entry.value.scalar?.isPlain == true {
                version = v
                if !Self.supportedVersions.contains(v) {
                    d.error(.unsupportedVersion, "recipe format version \(v) is not supported; this kiln reads version 1",
                            at: entry.value.mark, hint: "write `kiln: 1`, or upgrade kiln")
                }
            } else {
                d.error(.wrongType, "`kiln:` must be the format version, an integer; found \(entry.value.kindName)",
                        at: entry.value.mark, hint: "write `kiln: 1`")
            }
        } else {
            d.error(.missingKey, "the recipe has no `kiln:` format version", at: root.mark, hint: "start the recipe with `kiln: 1`")
        }

        if let entry = byKey["name"], let text = d.text(entry.value, "`name:`") {
            if Self.isName(text.value) { name = text.value } else {
                d.error(.invalidValue, "recipe name '\(text.value)' may hold only letters, digits, '.', '_' and '-'", at: text.mark)
            }
        }
        if let entry = byKey["image"] {
            if case .mapping = entry.value.content {
                (image, imageBuild) = Self.imageBuild(entry.value, &d)
            } else if let text = d.text(entry.value, "`image:`") {
                image = Self.image(text, &d) ?? .host
            }
        }
        if let entry = byKey["env"] { env = Self.env(entry.value, "`env:`", &d) }
        if let entry = byKey["params"], let pairs = d.mapping(entry.value, "`params:`") {
            for pair in pairs {
                if !Self.isIdentifier(pair.key) {
                    d.error(.invalidValue, "param name '\(pair.key)' must be letters, digits and '_', not starting with a digit",
                            at: pair.keyMark)
                }
                if let value = d.paramValue(pair.value, "param '\(pair.key)'") {
                    params.append(RawParam(name: pair.key, value: value, mark: pair.keyMark))
                }
            }
        }
        if let entry = byKey["stages"] {
            if let pairs = d.mapping(entry.value, "`stages:`") {
                if pairs.isEmpty { d.error(.missingKey, "`stages:` is empty", at: entry.value.mark, hint: "declare at least one stage") }
                for pair in pairs { stages.append(Self.stage(pair.key, pair.keyMark, pair.value, &d)) }
            }
        } else {
            d.error(.missingKey, "the recipe has no `stages:`", at: root.mark, hint: "declare stages, each with at least `run:`")
        }
    }

    /// Letters, digits, `.`, `_`, `-` (ASCII), and not `.` or `..`.
    static func isName(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && s.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Letters, digits and `_` (ASCII), not starting with a digit: params, matrix and env names.
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return s.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") }
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }

    /// `host` or `NAME@sha256:HEX`.
    static func image(_ text: Diagnostics.Text, _ d: inout Diagnostics) -> ImageReference? {
        if text.value == "host" { return .host }
        let hint = "write `host`, or pin an image by digest: NAME@sha256:<64 hex digits>"
        guard let at = text.value.lastIndex(of: "@") else {
            d.error(.invalidValue, "image '\(text.value)' is not pinned; expected `host` or NAME@sha256:HEX", at: text.mark, hint: hint)
            return nil
        }
        let name = String(text.value[..<at]), digestText = String(text.value[text.value.index(after: at)...])
        let nameOK = !name.isEmpty && name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isLowercase || ("0"..."9").contains($0) || "._-/:".unicodeScalars.contains($0))
        }
        guard nameOK else {
            d.error(.invalidValue, "image name '\(name)' must be lowercase letters, digits and . _ - / :", at: text.mark, hint: hint)
            return nil
        }
        guard digestText.hasPrefix(Digest.prefix), let digest = Digest(digestText) else {
            d.error(.invalidValue, "image digest '\(digestText)' is not sha256: followed by 64 lowercase hex digits", at: text.mark, hint: hint)
            return nil
        }
        return .pinned(name: name, digest: digest)
    }

    /// `image: {name:, build: {from:, packages:}, pinned:}`.
    static func imageBuild(_ node: YAMLNode, _ d: inout Diagnostics) -> (ImageReference, ImageBuildSpec?) {
        guard let entries = d.mapping(node, "`image:`") else { return (.host, nil) }
        d.checkKeys(entries, allowed: ["name", "build", "pinned"], in: "`image:`")
        let byKey = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var image = ImageReference.host
        var name = ""
        if let entry = byKey["name"], let text = d.text(entry.value, "`image: name:`") {
            let ok = !text.value.isEmpty && text.value.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isLowercase || ("0"..."9").contains($0) || "._-/:".unicodeScalars.contains($0))
            }
            if ok { name = text.value } else {
                d.error(.invalidValue, "image name '\(text.value)' must be lowercase letters, digits and . _ - / :", at: text.mark)
            }
        }
        if let entry = byKey["pinned"], let text = d.text(entry.value, "`image: pinned:`") {
            image = Self.image(text, &d) ?? .host
        }
        guard let buildEntry = byKey["build"] else {
            d.error(.missingKey, "`image:` as a mapping needs `build:`", at: node.mark,
                    hint: "write `image: {build: {from: debian:bookworm, packages: [python3]}}`, or `image: NAME@sha256:HEX`")
            return (image, nil)
        }
        guard let build = d.mapping(buildEntry.value, "`image: build:`") else { return (image, nil) }
        d.checkKeys(build, allowed: ["from", "packages"], in: "`image: build:`")
        let buildKeys = Dictionary(build.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var from = "debian:bookworm"
        if let entry = buildKeys["from"], let text = d.text(entry.value, "`image: build: from:`") {
            if text.value.hasPrefix("debian:"), text.value.count > 7, !text.value.contains("/") { from = text.value } else {
                d.error(.invalidValue, "`from: \(text.value)` is not debian:SUITE", at: text.mark, hint: "write `from: debian:bookworm`")
            }
        }
        var packages: [String] = []
        if let entry = buildKeys["packages"] {
            for text in d.texts(entry.value, "`image: build: packages:`") {
                if !text.value.isEmpty, text.value.allSatisfy({ $0.isLetter || $0.isNumber || "+-.:=~".contains($0) }) {
                    packages.append(text.value)
                } else {
                    d.error(.invalidValue, "'\(text.value)' is not a Debian package name", at: text.mark)
                }
            }
        }
        if case .pinned(let pinnedName, _) = image, name.isEmpty { name = pinnedName }
        return (image, ImageBuildSpec(name: name, from: from, packages: packages, isLocked: image != .host))
    }

    /// An environment mapping: names like shell variables, scalar values (numbers as written).
    static func env(_ node: YAMLNode, _ what: String, _ d: inout Diagnostics) -> [(name: String, value: Diagnostics.Text)] {
        guard let pairs = d.mapping(node, what) else { return [] }
        var result: [(name: String, value: Diagnostics.Text)] = []
        for pair in pairs {
            if !isIdentifier(pair.key) {
                d.error(.invalidValue, "environment variable name '\(pair.key)' must be letters, digits and '_', not starting with a digit",
                        at: pair.keyMark)
                continue
            }
            if let scalar = pair.value.scalar, scalar.isPlain, scalar.resolved == .null {
                result.append((pair.key, Diagnostics.Text(value: "", mark: pair.value.mark, scalar: scalar)))
            } else if let text = d.text(pair.value, "environment variable '\(pair.key)'") {
                result.append((pair.key, text))
            }
        }
        return result
    }

    static func stage(_ name: String, _ mark: Mark, _ node: YAMLNode, _ d: inout Diagnostics) -> RawStage {
        var stage = RawStage(name: name, mark: mark)
        if !isName(name) {
            d.error(.invalidValue, "stage name '\(name)' may hold only letters, digits, '.', '_' and '-'", at: mark,
                    hint: "'@', '=' and ',' are kept for matrix variants (train@C=0.1)")
        }
        let what = "stage '\(name)'"
        guard let entries = d.mapping(node, what) else { return stage }
        d.checkKeys(entries, allowed: stageKeys, in: what)
        var sawRun = false
        for entry in entries {
            let value = entry.value
            switch entry.key {
            case "run":
                sawRun = true
                if case .sequence(let items) = value.content {
                    let argv = items.compactMap { d.text($0, "each argument of `run:`") }
                    if items.isEmpty { d.error(.invalidValue, "`run:` is an empty list", at: value.mark, hint: "give the program and its arguments") }
                    stage.run = .argv(argv)
                } else if let text = d.text(value, "`run:` (a shell command, or a list of arguments)") {
                    if text.value.allSatisfy(\.isWhitespace) {
                        d.error(.invalidValue, "`run:` is empty", at: value.mark, hint: "give the command the stage runs")
                    }
                    stage.run = .shell(text)
                }
            case "env": stage.env = env(value, "`env:` of \(what)", &d)
            case "inputs": stage.inputs = d.texts(value, "`inputs:`")
            case "outputs": stage.outputs = d.texts(value, "`outputs:`")
            case "metrics": stage.metrics = d.text(value, "`metrics:` (the path of a JSON file)")
            case "gates": stage.gates = d.texts(value, "`gates:`")
            case "cpus":
                if case .int(let n)? = value.scalar?.resolved, value.scalar?.isPlain == true, n >= 1, n <= 4096 {
                    stage.cpus = n
                } else {
                    d.error(.wrongType, "`cpus:` must be a whole number from 1 to 4096, found \(value.scalar?.value ?? value.kindName)",
                            at: value.mark)
                }
            case "memory":
                if let text = d.text(value, "`memory:`") {
                    if let bytes = Units.bytes(text.value), bytes > 0 { stage.memoryBytes = bytes } else {
                        d.error(.invalidValue, "`memory:` '\(text.value)' is not a size", at: value.mark, hint: "write a size such as 512M or 2G")
                    }
                }
            case "timeout":
                if let text = d.text(value, "`timeout:`") {
                    if let seconds = Units.seconds(text.value), seconds > 0 { stage.timeoutSeconds = seconds } else {
                        d.error(.invalidValue, "`timeout:` '\(text.value)' is not a duration", at: value.mark,
                                hint: "write a duration such as 90s, 10m or 1h30m")
                    }
                }
            case "image":
                if let text = d.text(value, "a stage's `image:` (host or NAME@sha256:HEX)") { stage.image = Self.image(text, &d) }
            case "network":
                if let text = d.text(value, "`network:`") {
                    if let mode = NetworkMode(rawValue: text.value) { stage.network = mode } else {
                        d.error(.invalidValue, "`network:` must be none or host, found '\(text.value)'", at: value.mark,
                                hint: Suggestion.hint(for: text.value, among: ["none", "host"], what: "modes"))
                    }
                }
            case "matrix":
                guard let pairs = d.mapping(value, "`matrix:`") else { break }
                if pairs.isEmpty { d.error(.invalidValue, "`matrix:` is empty", at: value.mark, hint: "give each variable a list of values") }
                for pair in pairs {
                    if !isIdentifier(pair.key) {
                        d.error(.invalidValue, "matrix variable '\(pair.key)' must be letters, digits and '_'", at: pair.keyMark)
                    }
                    guard case .sequence(let items) = pair.value.content, !items.isEmpty else {
                        d.error(.wrongType, "matrix variable '\(pair.key)' must be a non-empty list of values, found \(pair.value.kindName)",
                                at: pair.value.mark, hint: "for example {C: [0.1, 1, 10]}")
                        continue
                    }
                    var values: [(value: ParamValue, mark: Mark)] = []
                    for item in items {
                        guard let v = d.paramValue(item, "each value of matrix variable '\(pair.key)'") else { continue }
                        if !isName(v.description) {
                            d.error(.invalidValue, "matrix value '\(v)' becomes part of a stage and folder name, so it may hold only letters, digits, '.', '_' and '-'",
                                    at: item.mark)
                        } else if values.contains(where: { $0.value.description == v.description }) {
                            d.error(.duplicateKey, "matrix value '\(v)' appears twice in '\(pair.key)'", at: item.mark)
                        } else {
                            values.append((v, item.mark))
                        }
                    }
                    stage.matrix.append(MatrixVariable(name: pair.key, values: values, mark: pair.keyMark))
                }
                // A few lists can multiply into billions of variants: refuse before expanding.
                var variants = 1
                for variable in stage.matrix {
                    let (product, overflow) = variants.multipliedReportingOverflow(by: max(1, variable.values.count))
                    variants = overflow ? Int.max : product
                }
                if variants > maxVariants {
                    d.error(.tooComplex, "`matrix:` makes \(variants == Int.max ? "too many" : String(variants)) variants; at most \(maxVariants) are allowed",
                            at: value.mark, hint: "split the stage, or sweep fewer values at once")
                    for i in stage.matrix.indices { stage.matrix[i].values = Array(stage.matrix[i].values.prefix(1)) }
                }
            default:
                break  // reported by checkKeys
            }
        }
        if !sawRun { d.error(.missingKey, "\(what) has no `run:`", at: mark, hint: "give the command it runs: `run: python3 train.py`") }
        return stage
    }
}

import KilnStore

/// A validated recipe (format version 1, DESIGN.md "Recipe format"): params resolved with their
/// overrides, matrix stages expanded into variants, `${…}` interpolated, and the DAG built.
public struct Recipe: Sendable {
    /// The format version (`kiln:`); always 1 for now.
    public var version: Int
    /// `name:`, or the file's name without `.yaml`/`.yml`.
    public var name: String
    /// The file as the caller named it; every location refers to it.
    public var file: String
    public var image: ImageReference
    /// `image: {build: …}`: how the image is built; `kiln image lock` builds it and writes its
    /// reference as `pinned:`. A recipe with `build:` and no `pinned:` has `image` = `.host` and
    /// cannot run until it is locked.
    public var imageBuild: ImageBuildSpec? = nil
    /// Every param with its value after `-p` overrides, in declaration order.
    public var params: [Param]
    /// The stages, matrix variants expanded, in declaration order (variants in matrix order).
    public var stages: [Stage]
    /// The dependency graph over `stages` (indices into it).
    public var graph: StageGraph

    /// The stage or variant with this exact name.
    public func stage(named name: String) -> Stage? { stages.first { $0.name == name } }

    /// The image `stage` runs on: its own `image:`, else the recipe's.
    public func image(for stage: Stage) -> ImageReference { stage.image ?? image }
}

/// `image: {name: N, build: {from: debian:SUITE, packages: [...]}, pinned: N@sha256:HEX}`.
public struct ImageBuildSpec: Sendable, Equatable {
    /// The image's name (`name:`, else the recipe's name).
    public var name: String
    /// `debian:SUITE`.
    public var from: String
    public var packages: [String]
    /// Whether `pinned:` is there (then `Recipe.image` is that reference).
    public var isLocked: Bool
}

/// `image:` — the host's toolchain, or a pinned image.
public enum ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// The host's `/usr` etc., read-only, fingerprinted into the key.
    case host
    /// `NAME@sha256:HEX`: a name for people and the digest that identifies it.
    case pinned(name: String, digest: Digest)

    public var description: String {
        switch self {
        case .host: return "host"
        case .pinned(let name, let digest): return "\(name)@\(digest)"
        }
    }
}

/// `network:` — none (the default) or the host's network.
public enum NetworkMode: String, Hashable, Sendable {
    case none
    case host
}

/// A param or matrix value: a number, string or boolean.
public enum ParamValue: Hashable, Sendable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)

    /// The text `${params.X}` becomes: integers in decimal, doubles in Swift's shortest round-trip
    /// form (`10.0`, `0.1`, `1e-05`), so `-p C=10` and `-p C=10.0` give one argv and one key.
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.description
        case .string(let v): return v
        case .bool(let v): return v ? "true" : "false"
        }
    }

    /// What the value's type is called in messages.
    public var typeName: String {
        switch self {
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .bool: return "a boolean"
        }
    }
}

/// A declared param and its value.
public struct Param: Hashable, Sendable {
    public var name: String
    /// The value in force: the default, or the `-p` override typed like it.
    public var value: ParamValue
    /// The value the recipe declares.
    public var defaultValue: ParamValue
    /// Where the param is declared.
    public var location: SourceLocation
}

/// One stage, or one variant of a matrix stage, ready to plan.
public struct Stage: Hashable, Sendable {
    /// The stage's name, or for a variant `train@C=0.1` (`train@C=0.1,kernel=rbf` for several variables).
    public var name: String
    /// The name under `stages:` (equal to `name` unless this is a matrix variant).
    public var baseName: String
    /// The variant's matrix values in the matrix's order; empty for a plain stage.
    public var matrix: [MatrixBinding]
    /// The command: a string `run` becomes `["/bin/sh", "-c", text]`; a list is the argv itself.
    public var argv: [String]
    /// The recipe's env overridden by the stage's, interpolated (kiln's defaults are the engine's).
    public var env: [String: String]
    /// Workspace paths read, interpolated and normalised.
    public var inputs: [WorkspacePath]
    /// Workspace paths created; a variant's are under its own folder (see `Stage.variantDirectory`).
    public var outputs: [WorkspacePath]
    /// The metrics JSON file, one of the outputs or inside one.
    public var metrics: WorkspacePath?
    /// Gates on the metrics, parsed.
    public var gates: [GateExpression]
    /// CPUs (affinity and *_NUM_THREADS); part of the key. Default 1.
    public var cpus: Int
    /// Memory limit in bytes, if set.
    public var memoryBytes: UInt64?
    /// Wall-clock limit in seconds, if set.
    public var timeoutSeconds: Double?
    public var network: NetworkMode
    /// `image:` on the stage: its own pinned image (or `host`) instead of the recipe's; nil: the recipe's.
    public var image: ImageReference? = nil
    /// The params whose values this stage's command, env or paths use (sorted by name): its action
    /// key holds only these, so changing another param leaves the stage cached.
    public var paramsUsed: [String]
    /// Where the stage is declared (its key under `stages:`).
    public var location: SourceLocation

    /// The folder under which a variant's outputs live: the variant's name (`train@C=0.1/`).
    /// An output written `model.pkl` in a matrix stage becomes `train@C=0.1/model.pkl`, unless
    /// the author placed it with `${matrix.X}`, which is used as written. The command finds the
    /// folder as `${variant}`.
    public static func variantDirectory(_ variantName: String) -> String { variantName + "/" }
}

/// One matrix variable's value in a variant.
public struct MatrixBinding: Hashable, Sendable {
    public var name: String
    public var value: ParamValue
}

extension Recipe {
    /// The values of the params `stage` uses, by name: what its action key holds.
    public func paramValues(for stage: Stage) -> [String: ParamValue] {
        var values: [String: ParamValue] = [:]
        for param in params where stage.paramsUsed.contains(param.name) { values[param.name] = param.value }
        return values
    }
}

/// Params go into action keys and run records as JSON: integers and numbers as JSON numbers,
/// strings and booleans as themselves. Decoding reads a whole JSON number as `.int`, so a record's
/// `10.0` (written `10` by some encoders) comes back as `.int(10)`: retype it with `Recipe.typed`.
extension ParamValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let v = try? container.decode(Bool.self) { self = .bool(v) }
        else if let v = try? container.decode(Int.self) { self = .int(v) }
        else if let v = try? container.decode(Double.self) { self = .double(v) }
        else { self = .string(try container.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let v): try container.encode(v)
        case .double(let v): try container.encode(v)
        case .string(let v): try container.encode(v)
        case .bool(let v): try container.encode(v)
        }
    }
}

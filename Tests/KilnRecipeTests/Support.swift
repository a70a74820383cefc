@testable import KilnRecipe

/// Loads a recipe from text; the workspace holds `existing` (and nothing else).
func load(
    _ yaml: String, file: String = "recipes/test.yaml", overrides: [(name: String, value: String)] = [],
    existing: Set<String> = []
) throws(RecipeErrors) -> Recipe {
    try Recipe(parsing: Array(yaml.utf8), file: file, overrides: overrides, fileExists: { existing.contains($0) })
}

/// The errors a recipe gives (empty if it loads).
func errors(_ yaml: String, overrides: [(name: String, value: String)] = [], existing: Set<String> = []) -> [RecipeError] {
    errors(bytes: Array(yaml.utf8), overrides: overrides, existing: existing)
}

func errors(bytes: [UInt8], overrides: [(name: String, value: String)] = [], existing: Set<String> = []) -> [RecipeError] {
    do {
        _ = try Recipe(parsing: bytes, file: "recipes/test.yaml", overrides: overrides, fileExists: { existing.contains($0) })
        return []
    } catch {
        return error.errors
    }
}

/// `code@line:column` for compact expectations.
func summary(_ errors: [RecipeError]) -> [String] {
    errors.map { "\($0.code.rawValue)@\($0.location.line):\($0.location.column)" }
}

/// The recipe of DESIGN.md, "Recipe format, version 1", verbatim.
let designExample = """
kiln: 1                         # required: the format version
name: digits                    # optional: defaults to the file's name
image: host                     # host (default: the host's /usr etc., read-only, fingerprinted) or NAME@sha256:HEX
env: {OPENBLAS_CORETYPE: Haswell}   # optional, every stage; a stage's env overrides it
params: {seed: 0, C: 1.0}       # defaults; `kiln run -p C=10` overrides; a stage's key holds only the params it uses
stages:
  prepare:
    run: python3 recipes/digits/prepare.py --seed ${params.seed} --out data   # string: /bin/sh -c; list: argv
    inputs: [recipes/digits/prepare.py]     # workspace paths: files, dirs (trailing /), globs
    outputs: [data/]                        # what the stage must create
  train:
    run: python3 recipes/digits/train.py --C ${params.C}
    inputs: [recipes/digits/train.py, data/]   # data/ is prepare's output, so train depends on prepare
    outputs: [model.pkl]
    cpus: 2                                 # affinity and *_NUM_THREADS; part of the key
    memory: 2G
    timeout: 10m
  evaluate:
    run: python3 recipes/digits/evaluate.py
    inputs: [recipes/digits/evaluate.py, model.pkl, data/]
    outputs: [metrics.json]
    metrics: metrics.json                   # JSON; its numbers can be gated and compared across runs
    gates: ["accuracy >= 0.9"]

"""

let designScripts: Set<String> = ["recipes/digits/prepare.py", "recipes/digits/train.py", "recipes/digits/evaluate.py"]

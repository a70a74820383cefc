import KilnImage
import KilnRecipe
import KilnSandbox
import KilnStore

/// A recipe's pinned image, between the cache and the sandbox: found before anything runs,
/// extracted on first use, and made each stage's root.
public enum ImageResolution {
    /// The pinned images `stages` run on (the recipe's, or a stage's own), found in the cache. A
    /// digest the cache does not hold fails here, before any stage runs, saying how to get it.
    public static func resolve(_ recipe: Recipe, stages: [Stage], store: Store, shown: String) throws(EngineError) -> [ResolvedImage] {
        var found: [ResolvedImage] = []
        for stage in stages {
            guard case .pinned(let name, let digest) = recipe.image(for: stage), !found.contains(where: { $0.digest == digest }) else { continue }
            do {
                found.append(try ImageStore(store: store).resolve(name: name, digest: digest))
            } catch {
                let user = stage.image == nil ? "its image" : "stage '\(stage.name)''s image"
                throw EngineError(.missingImage, "\(shown): \(user) \(name)@\(digest) is not in the cache at \(store.root), so nothing ran. Get it with `kiln image import SOURCE --name \(name)` (the same root filesystem gives the same digest), `kiln image build --name \(name) …` and pin the digest it prints, or `kiln import BUNDLE` from the machine that has it.")
            }
        }
        return found
    }

    /// The sandbox root for `stage`: the host's toolchain, or the extracted pinned image, held
    /// (not removable by `kiln image rm` or gc) until the returned use is released.
    static func root(for stage: Stage, planner: Planner, store: Store) throws(EngineError) -> (SandboxSpec.Root, ImageRootUse?) {
        guard case .pinned = planner.image(for: stage) else { return (.hostToolchain, nil) }
        guard let image = planner.pinnedImage(for: stage) else {
            throw EngineError(.missingImage, "stage '\(stage.name)': its image \(planner.image(for: stage)) was not looked up in the cache (ImageResolution.resolve) before running.")
        }
        do {
            let use = try store.useImageRoot(image.digest)
            return (.image(path: use.path), use)
        } catch {
            throw EngineError(.missingImage, "stage '\(stage.name)': cannot extract its image \(image.reference): \(error.message)")
        }
    }

    /// `spec` with `root` and, on an image, the environment with the image's Env.
    static func onRoot(_ spec: SandboxSpec, _ root: SandboxSpec.Root, stage: Stage, planner: Planner) -> SandboxSpec {
        guard case .image = root else { return spec }
        var spec = spec
        spec.root = root
        spec.environment = planner.environment(for: stage)
        return spec
    }
}

import ArgumentParser
import FoundationEssentials
import KilnImage
import KilnRecipe
import KilnStore

#if canImport(Glibc)
import Glibc
#endif

extension Kiln.Image {
    /// `kiln image lock [RECIPE]`: build a recipe's `image: {build: …}` and pin its digest.
    struct Lock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lock",
            abstract: "Build a recipe's image (image: {build: …}) and write its digest into the recipe as pinned:.",
            discussion: """
                A recipe may say how its image is built instead of naming a digest:
                  image:
                    name: py
                    build: {from: debian:bookworm, packages: [python3, python3-numpy]}
                `kiln image lock` builds it (as `kiln image build` does) and adds `pinned: py@sha256:…` to \
                that mapping, leaving the rest of the file as it was; commit the recipe with it. `kiln run` \
                refuses a recipe whose image is not locked. An already locked recipe whose image is in \
                the cache is left alone unless --update.
                """)

        @Argument(help: ArgumentHelp("The recipe (a path or a name in recipes/); may be omitted when the workspace has one.", valueName: "recipe"))
        var recipe: String?

        @Flag(name: .customLong("update"), help: "Build again and pin the new digest even when the recipe is locked.")
        var update = false

        @Option(name: .customLong("mirror"), help: ArgumentHelp("The Debian mirror (default: mmdebstrap's, deb.debian.org).", valueName: "url"))
        var mirror: String?

        @Option(name: .customLong("cache"), help: ArgumentHelp("The cache directory (default: $KILN_CACHE, else cache/ in the workspace).", valueName: "dir"))
        var cache: String?

        @Option(name: .customLong("workspace"), help: ArgumentHelp("The workspace (default: the nearest folder above the current one holding recipes/).", valueName: "dir"))
        var workspace: String?

        func run() async throws {
            let ws = try RunSetup.workspace(workspace)
            let (file, _) = try RunSetup.recipeFile(recipe.map { [$0] } ?? [], workspace: ws)
            let shown = RunSetup.relative(file, to: ws) ?? file
            let loaded = try RunSetup.load(file, workspace: ws, params: [])
            guard let build = loaded.imageBuild else {
                storeErrorLine("kiln: \(shown) has no `image: {build: …}` to lock; write one, like `image: {build: {from: debian:bookworm, packages: [python3]}}`.")
                throw ExitCode(KilnExitCode.recipeInvalid)
            }
            let location = CacheLocation.resolve(option: cache, environment: RunSetup.environment(), currentDirectory: ws)
            try storeMain {
                let images = ImageStore(store: try Store(root: location.path))
                if build.isLocked, !update, case .pinned(_, let digest) = loaded.image, images.store.contains(digest) {
                    storeOutputLine("\(shown): already locked to \(loaded.image) (in the cache); --update builds it again")
                    return
                }
                let image = try DebianImageBuilder.build(images, name: build.name, suite: String(build.from.dropFirst("debian:".count)),
                                                         packages: build.packages, mirror: mirror)
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw StoreError(.io, "cannot read \(shown) again to write the digest into it.")
                }
                let text = String(decoding: data, as: UTF8.self)
                guard let locked = ImageLock.rewrite(text, reference: image.reference),
                      let reparsed = try? Recipe(parsing: Array(locked.utf8), file: shown, fileExists: { _ in true }),
                      reparsed.image == .pinned(name: image.name ?? build.name, digest: image.digest) else {
                    throw StoreError(.invalidArgument, "\(shown): kiln cannot place `pinned:` in its image: mapping by itself; add the line `pinned: \(image.reference)` to it by hand.")
                }
                let tmp = file + ".kiln-lock-\(getpid())"
                guard FileManager.default.createFile(atPath: tmp, contents: Data(locked.utf8)), rename(tmp, file) == 0 else {
                    unlink(tmp)
                    throw StoreError(.io, "cannot write \(shown): errno \(errno).")
                }
                storeOutputLine("\(shown): image pinned to \(image.reference)")
            }
        }
    }
}

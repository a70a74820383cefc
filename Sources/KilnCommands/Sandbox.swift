import ArgumentParser

extension Kiln {
    /// `kiln sandbox`: the hermetic sandbox on its own, like `bwrap`.
    struct Sandbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sandbox",  // Spelled out: deriving it from the type name is slow at start-up.
            abstract: "Run commands in kiln's hermetic sandbox.",
            subcommands: [Run.self]
        )
    }
}

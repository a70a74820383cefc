import ArgumentParser

extension Kiln {
    /// The store's subcommands (`hash`, `archive`, `extract`, `cache`), registered on the root command.
    static let storeCommands: [any ParsableCommand.Type] = []
}

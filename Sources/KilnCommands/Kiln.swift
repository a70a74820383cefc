import ArgumentParser
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The root command. Each subcommand lives in its own file as `extension Kiln { struct … }`.
public struct Kiln: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Continuous integration and delivery for machine learning: the same inputs give the same bytes.",
        discussion: """
            Every stage of a pipeline runs in a namespace-and-seccomp sandbox that sees only its \
            pinned inputs; its outputs are stored as deterministic archives in a content-addressed \
            cache, and every run is recorded so it can be replayed and verified byte for byte.

            Exit codes: the sandboxed command's own code; 128+N when it died of signal N;
            \(KilnExitCode.documentation)
            """,
        version: KilnVersion.string,
        groupedSubcommands: [
            CommandGroup(name: "Pipelines", subcommands: [Run.self, Status.self]),
            CommandGroup(name: "Runs", subcommands: [Runs.self, Show.self, Logs.self, Diff.self, Replay.self, Verify.self, Export.self, Import.self]),
            CommandGroup(name: "Environments", subcommands: [Image.self, Sandbox.self]),
            CommandGroup(name: "Store", subcommands: storeCommands),
        ]
    )

    public init() {}
}

/// Kiln's version, recorded in run records and printed by `kiln --version`.
public enum KilnVersion {
    public static let string = "0.1.0"
}

extension Kiln {
    /// Called by the `kiln` executable; keeps ArgumentParser out of its imports. Never returns.
    ///
    /// `kiln sandbox run` is parsed and run synchronously on the main thread, which then anchors
    /// the sandbox's parent-death signal: no concurrency runtime and no thread start for the
    /// command whose start-up time is measured against bwrap. Everything else runs as an
    /// async command.
    public static func entrypoint() -> Never {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.starts(with: ["sandbox", "run"]) {
            do throws(ValidationError) {
                arguments = try BindArguments.lift(arguments)
            } catch {
                printError("Error: \(error.message)\nSee 'kiln sandbox run --help' for the options.")
                Glibc.exit(KilnExitCode.usage)
            }
            // Parse only `run`'s own options (building the whole command tree costs start-up
            // time); on an error or --help, the whole tree parses again to explain it properly.
            var command: any ParsableCommand
            do {
                command = try Sandbox.Run.parse(Array(arguments.dropFirst(2)))
            } catch {
                do {
                    command = try parseAsRoot(arguments)
                } catch {
                    exit(withError: error)
                }
            }
            do {
                try command.run()
                Glibc.exit(0)
            } catch let code as ExitCode {
                Glibc.exit(code.rawValue)  // The command's own status: nothing to print.
            } catch {
                exit(withError: error)
            }
        }
        // `kiln run` takes SIGINT and SIGTERM on a thread of its own (see Interrupts): set that up
        // now, while this is the only thread, so that every thread started later has them blocked.
        if arguments.first == "run" { Interrupts.install() }
        Task {
            await main(arguments)
            Glibc.exit(0)
        }
        dispatchMain()
    }
}

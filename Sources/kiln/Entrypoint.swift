// The executable is deliberately thin: everything lives in KilnCommands so tests can drive it.
import KilnCommands

@main
enum Entrypoint {
    static func main() {
        Kiln.entrypoint()
    }
}

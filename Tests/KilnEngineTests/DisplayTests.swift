import Foundation
@testable import KilnCommands
import Testing

/// The pieces of `kiln run`'s display that need no terminal.
struct DisplayTests {
    @Test func theLiveBlockFitsTheWidth() {
        let lines = LiveBlock.render(running: [("train", 12.34), ("a-very-long-stage-name-indeed", 1)],
                                     counts: .init(ran: 2, cached: 1, failed: 0, done: 3, total: 8), frame: 0, width: 40)
        #expect(lines[0] == "⠋ train                 12.3s")
        #expect(lines[1].hasPrefix("⠋ a-very-long-stage-name-indeed  1.0s"))
        #expect(lines[2] == "ran 2 · cached 1 · failed 0 · running …")
        #expect(lines.allSatisfy { $0.count <= 39 }, "no line wraps: \(lines)")
    }

    @Test func truncateAndSanitize() {
        #expect(Terminal.truncate("abcdef", to: 4) == "abc…")
        #expect(Terminal.truncate("abc", to: 4) == "abc")
        #expect(Terminal.truncate("éééééé", to: 4) == "ééé…", "characters, not bytes")
        #expect(Terminal.sanitize("a\u{1B}[1;31mred\u{1B}[0m\tb\u{07}") == "ared b ")
        #expect(Terminal.sanitize("plain") == "plain")
    }

    @Test func outputEventsAreValidJSON() throws {
        let line = "q\"b\\s/\t\u{01}é\u{FFFD}"
        let text = OutputJSON.event(stage: "s\"1", stream: "stderr", line: line)
        #expect(text.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])
        #expect(object == ["event": "output", "stage": "s\"1", "stream": "stderr", "line": line])
    }
}

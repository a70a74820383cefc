/// Cuts a byte stream into display lines: `\n` ends a line (a `\r` before it is dropped); a lone
/// `\r` starts the line over, as on a terminal, so a progress bar (tqdm) shows its last state
/// instead of kilobytes of redraws; a line longer than `limit` bytes is cut there, marked, and the
/// rest of it dropped (the stored log keeps every byte). Bytes that are not UTF-8 decode as U+FFFD.
struct LineSplitter {
    let limit: Int
    private var line: [UInt8] = []
    /// A `\r` was seen: the next byte decides whether it ended the line or restarts it.
    private var carriageReturn = false
    /// The current line was cut: drop bytes until its `\n`.
    private var cut = false

    init(limit: Int = 4096) {
        self.limit = limit
        line.reserveCapacity(256)
    }

    /// Feeds `bytes`; calls `emit` for each line they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (String) -> Void) {
        for byte in bytes {
            if carriageReturn {
                carriageReturn = false
                if byte != UInt8(ascii: "\n") { line.removeAll(keepingCapacity: true); cut = false }
            }
            switch byte {
            case UInt8(ascii: "\n"):
                emitLine(emit)
            case UInt8(ascii: "\r"):
                carriageReturn = true
            default:
                if cut { continue }
                if line.count == limit {
                    emit(Self.decode(line[...].prefix(Self.boundary(line, limit))) + " [… cut at \(limit) bytes]")
                    line.removeAll(keepingCapacity: true)
                    cut = true
                } else {
                    line.append(byte)
                }
            }
        }
    }

    /// At end of stream: emits a last line that had no `\n`.
    mutating func finish(_ emit: (String) -> Void) {
        if !line.isEmpty { emitLine(emit) }
        cut = false
    }

    private mutating func emitLine(_ emit: (String) -> Void) {
        if !cut { emit(Self.decode(line[...])) }
        line.removeAll(keepingCapacity: true)
        cut = false
    }

    static func decode(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The largest length ≤ `n` that does not split a UTF-8 sequence (so the cut adds no U+FFFD).
    static func boundary(_ bytes: [UInt8], _ n: Int) -> Int {
        var i = n
        // Step back over continuation bytes (10xxxxxx) to the lead byte, at most 3.
        while i > 0, n - i < 4, bytes[i - 1] & 0xC0 == 0x80 { i -= 1 }
        guard i > 0, i < n || bytes[i - 1] & 0x80 != 0 else { return n }
        let lead = bytes[i - 1]
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        return n - (i - 1) >= length ? n : i - 1
    }
}

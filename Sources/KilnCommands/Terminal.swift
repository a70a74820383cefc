#if canImport(Glibc)
import Glibc
#endif

/// What `kiln run` needs to know about its standard output as a terminal.
enum Terminal {
    /// Standard output is a terminal that understands cursor movement (not `TERM=dumb`).
    static var isCapable: Bool {
        guard isatty(1) == 1 else { return false }
        guard let term = getenv("TERM") else { return false }
        let name = String(cString: term)
        return !name.isEmpty && name != "dumb"
    }

    /// Columns of standard output's terminal; 80 when it is not one (or will not say).
    static var width: Int {
        var size = winsize()
        let rc = withUnsafeMutablePointer(to: &size) { ioctl(1, UInt(TIOCGWINSZ), $0) }
        return rc == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
    }

    /// `line` cut to `columns` characters (a character is taken as one column), marked with `…`.
    static func truncate(_ line: String, to columns: Int) -> String {
        // A character takes at least one byte: a line of few bytes needs no counting.
        guard columns > 1, line.utf8.count > columns, line.count > columns else { return line }
        return String(line.prefix(columns - 1)) + "…"
    }

    /// A stage's line made safe to print between cursor movements: escape sequences (colours,
    /// cursor moves) are dropped and other control characters become spaces, so the line is one
    /// row and cannot move the cursor itself.
    static func sanitize(_ line: String) -> String {
        guard line.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return line }
        var out = String.UnicodeScalarView()
        var scalars = line.unicodeScalars.makeIterator()
        while let s = scalars.next() {
            if s == "\u{1B}" {
                // CSI (ESC [ … final byte 0x40–0x7E); other escapes are two characters.
                guard let next = scalars.next() else { break }
                if next == "[" {
                    while let p = scalars.next(), !(0x40...0x7E).contains(p.value) {}
                }
            } else if s.value < 0x20 || s.value == 0x7F {
                out.append(" ")
            } else {
                out.append(s)
            }
        }
        return String(out)
    }

    /// Writes all of `text` to `fd`.
    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}

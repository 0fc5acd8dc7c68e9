/// Rejects the table headers and values that crash TOMLKit's parser, before the text reaches it.
///
/// toml++ (inside TOMLKit 0.6.0) assumes that a `[` or `[[` opening a table header, after optional blanks,
/// is followed by `]`, a bare key character or a quote: anything else (`[ = 1`, `[[.a]]`, `[#]`) fails an
/// `assert` (SIGABRT, in release builds undefined behaviour) instead of a syntax error. Found by the config
/// fuzz target; a daemon reloading such a file would have died. Likewise a value that starts with `}` (after
/// `=`, `[` or `,` in an array: `x = [1, }]`) fails `!is_value_terminator`. This scan finds both with a small
/// lexer that knows strings, comments and value nesting, so brackets inside strings are left alone.
enum TOMLHeaderGuard {
    /// The 1-based line of the first header or value toml++ cannot take, or nil.
    static func firstBadHeaderLine(_ text: String) -> Int? {
        let b = Array(text.utf8)
        var i = 0
        var line = 1
        var open: [UInt8] = []  // the [ and { open inside values
        var expectingValue = false  // after `=`, or `[` / `,` inside an array
        var lineStart = true  // only blanks so far on this line
        func at(_ k: Int) -> UInt8? { k < b.count ? b[k] : nil }
        // toml++ skips a UTF-8 byte order mark at the start, so the first line is still at its start after
        // it (a fuzz find: BOM + "[" + a non-key character reached toml++'s assertion past this guard).
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        func starts(_ s: String, _ k: Int) -> Bool { Array(s.utf8).enumerated().allSatisfy { at(k + $0.offset) == $0.element } }
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\n") {
                line += 1
                lineStart = true
                if open.isEmpty { expectingValue = false }
                i += 1
                continue
            }
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") {
                i += 1
                continue
            }
            if c == UInt8(ascii: "#") {
                while i < b.count, b[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            }
            if expectingValue, c == UInt8(ascii: "}") { return line }
            expectingValue = false
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                let quote = c
                let multi = starts(quote == UInt8(ascii: "\"") ? "\"\"\"" : "'''", i)
                i += multi ? 3 : 1
                while i < b.count {
                    if b[i] == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                        if at(i + 1) == UInt8(ascii: "\n") { line += 1 }
                        i += 2
                        continue
                    }
                    if b[i] == UInt8(ascii: "\n") {
                        line += 1
                        if !multi { break }
                    }
                    if b[i] == quote && (!multi || (at(i + 1) == quote && at(i + 2) == quote)) {
                        i += multi ? 3 : 1
                        break
                    }
                    i += 1
                }
                lineStart = false
                continue
            }
            if c == UInt8(ascii: "["), open.isEmpty, lineStart {
                var k = i + 1
                if at(k) == UInt8(ascii: "[") { k += 1 }
                while at(k) == UInt8(ascii: " ") || at(k) == UInt8(ascii: "\t") { k += 1 }
                guard let next = at(k), isHeaderStart(next) else { return line }
                i = k
                lineStart = false
                continue
            }
            if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { open.append(c) }
            if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") { _ = open.popLast() }
            if c == UInt8(ascii: "=") || c == UInt8(ascii: "[") || (c == UInt8(ascii: ",") && open.last == UInt8(ascii: "[")) {
                expectingValue = true
            }
            lineStart = false
            i += 1
        }
        return nil
    }

    /// What toml++ accepts after the opening brackets: `]` (it reports the empty name itself), a bare key
    /// character or a quote.
    private static func isHeaderStart(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"),
             UInt8(ascii: "]"), UInt8(ascii: "\""), UInt8(ascii: "'"):
            return true
        default:
            return false
        }
    }
}

import Testing

@testable import WSRelayCore

/// Inputs the fuzz targets (Fuzz/, scripts/fuzz) crashed on, each now a clear diagnostic.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    /// toml++ asserted (SIGABRT) on a table header whose name starts with neither a bare key character nor
    /// a quote; the daemon would have died on start or on reload. The fuzzer's input was
    /// Fuzz/regressions/config/toml-header-assert.
    @Test(arguments: [
        "[[ = \"wss://stream.example.com/feed\"\npong_timeout = 10\n",
        "[ = 1\n", "[[=1\n", "[\t#\n", "[.a]\n", "  [[ !x]]\n", "[a]\nx = 1\n[ é]\n",
        // toml++ also asserted on a value starting with `}` (Fuzz/regressions/config/toml-value-brace).
        "[u]\nfatal_close_codes = [4004, }008]\n", "x = }\n", "x = [\n  # c\n  }\n]\n", "a = { b = } }\n",
        // The same header assertion behind a UTF-8 byte order mark (Fuzz/regressions/config/toml-bom-header).
        "\u{FEFF}[\u{FFFD}\u{FFFD}[upstream]]\nname = \"x\"\n", "\u{FEFF}[ = 1\n",
    ])
    func inputsThatCrashedTOMLKitAreSyntaxErrors(text: String) throws {
        guard case .failure(let error) = ConfigLoader.parse(toml: text, file: "bad.toml") else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
        let diagnostic = try #require(error.diagnostics.first)
        #expect(diagnostic.message.contains("expected a table name"))
        #expect(diagnostic.keyPath.hasPrefix("line "))
    }

    /// The guard must leave valid TOML alone: brackets inside values, strings and comments.
    @Test(arguments: [
        "x = [\n  [ {a = 1} ],\n  [ =\n",  // nested values (the last line is an ordinary TOML error)
        "x = \"\"\"\n[ = not a header\n\"\"\"\n",
        "x = '''\n[[ !\n'''\n",
        "# [ = comment\n[a]\n[[b.c]]\n[ \"quoted\" ]\n",
        "x = [ {}, { a = 1 }, ]\ny = { a = [1, 2] }\nz = \"}\"\n",
    ])
    func bracketsOutsideHeadersAreLeftToTheParser(text: String) {
        #expect(TOMLHeaderGuard.firstBadHeaderLine(text) == nil)
    }
}

#if canImport(Glibc)
    import Glibc
#endif

/// One harness: a parser that takes outside input, driven with arbitrary bytes. A harness returns normally
/// for every input; a crash, a failed `check` or a sanitizer report is the finding.
struct FuzzTarget: Sendable {
    /// Also the name of its seed corpus directory, `Fuzz/corpus/NAME`.
    let name: String
    let summary: String
    let run: @Sendable (UnsafeRawBufferPointer) -> Void
}

enum FuzzTargets {
    static let all: [FuzzTarget] = [
        config, subscribeLine, controlLine, websocket, tokenResponse, httpDate, url, durationAndSize,
    ]
}

/// A property every accepted (or rejected) input must have; a violation crashes, so libFuzzer keeps the input.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz property violated: \(message())") }
}

/// Splits harness input into a few text fields at NUL bytes (absent fields are empty), so one input can
/// drive a parser that takes several strings.
func fields(_ bytes: UnsafeRawBufferPointer, count: Int) -> [String] {
    var parts = bytes.split(separator: 0, maxSplits: count - 1, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    while parts.count < count { parts.append("") }
    return parts
}

/// Writes `text` to standard error.
func printError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

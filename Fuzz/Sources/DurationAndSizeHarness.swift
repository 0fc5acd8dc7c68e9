@testable import WSRelayCore

extension FuzzTargets {
    /// `30s`, `1h30m`, `64KiB`: both parsers, and what they accept must round-trip through their formatters.
    static let durationAndSize = FuzzTarget(name: "duration-size", summary: "DurationParser, ByteSizeParser") { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        if let duration = DurationParser.parse(text) {
            let formatted = DurationParser.format(duration)
            check(DurationParser.parse(formatted) == duration, "duration \(formatted) does not round-trip")
        }
        if let size = ByteSizeParser.parse(text) {
            check(size >= 0, "negative size from \(text.debugDescription)")
            let formatted = ByteSizeParser.format(size)
            check(ByteSizeParser.parse(formatted) == size, "size \(formatted) does not round-trip")
        }
    }
}

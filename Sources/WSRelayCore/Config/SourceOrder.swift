/// Recovers the file order of table keys.
///
/// toml++ keeps table keys in a sorted map, so the parsed document no longer knows which `[auth.NAME]`
/// section or which header came first. Where order matters to the configuration (auth sections, extra
/// headers) this best-effort scan of the source text finds where each key is first written. Keys it cannot
/// find keep their sorted order after the ones it found.
struct SourceOrder {
    private let bytes: [UInt8]
    /// Byte offsets of the `[[upstream]]` header lines.
    private let upstreamStarts: [Int]

    init(source: String) {
        // Blank out whole-line comments so commented-out keys are not found.
        var cleaned: [UInt8] = []
        var starts: [Int] = []
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            let lineStart = cleaned.count
            if trimmed.hasPrefix("#") {
                cleaned.append(contentsOf: [UInt8](repeating: 0x20, count: line.utf8.count))
            } else {
                cleaned.append(contentsOf: line.utf8)
                if trimmed.filter({ $0 != " " && $0 != "\t" }).hasPrefix("[[upstream]]") {
                    starts.append(lineStart)
                }
            }
            cleaned.append(0x0A)
        }
        bytes = cleaned
        upstreamStarts = starts
    }

    /// Auth section names in the order their `[auth.NAME]` headers (or `auth.NAME.` keys) appear.
    func authOrder(_ names: [String]) -> [String] {
        sorted(names) { name in
            var best: Int? = nil
            for written in [name, "\"\(name)\"", "'\(name)'"] {
                if let p = firstOccurrence(of: "auth." + written, from: 0, to: bytes.count, followedBy: { c in
                    c == UInt8(ascii: "]") || c == UInt8(ascii: ".") || c == 0x20 || c == 0x09
                }) {
                    best = min(best ?? p, p)
                }
            }
            return best
        }
    }

    /// Header names of `upstream[index]` in file order.
    func upstreamHeaderOrder(_ names: [String], upstreamIndex: Int, upstreamCount: Int) -> [String] {
        var start = 0
        var end = bytes.count
        if upstreamStarts.count == upstreamCount, upstreamIndex < upstreamCount {
            start = upstreamStarts[upstreamIndex]
            if upstreamIndex + 1 < upstreamCount { end = upstreamStarts[upstreamIndex + 1] }
        }
        return keyOrder(names, from: start, to: end)
    }

    /// Header names of the `[auth.NAME]` section in file order.
    func authHeaderOrder(_ names: [String], authName: String) -> [String] {
        let start = firstOccurrence(of: "auth." + authName, from: 0, to: bytes.count) { _ in true } ?? 0
        return keyOrder(names, from: start, to: bytes.count)
    }

    private func keyOrder(_ names: [String], from start: Int, to end: Int) -> [String] {
        sorted(names) { name in
            var best: Int? = nil
            for written in [name, "\"\(name)\"", "'\(name)'"] {
                if let p = keyOccurrence(written, from: start, to: end) {
                    best = min(best ?? p, p)
                }
            }
            return best
        }
    }

    private func sorted(_ names: [String], position: (String) -> Int?) -> [String] {
        let positioned = names.enumerated().map { (offset: $0.offset, name: $0.element, pos: position($0.element)) }
        return positioned.sorted { a, b in
            switch (a.pos, b.pos) {
            case let (x?, y?) where x != y: return x < y
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a.offset < b.offset
            }
        }.map(\.name)
    }

    /// First place where `written` appears as a key: preceded by line start, blank, `{`, `,` or `.`, and
    /// followed by optional blanks and `=`.
    private func keyOccurrence(_ written: String, from start: Int, to end: Int) -> Int? {
        let needle = Array(written.utf8)
        var from = start
        while let p = find(needle, from: from, to: end) {
            let before: UInt8 = p == 0 ? 0x0A : bytes[p - 1]
            let okBefore = [0x0A, 0x20, 0x09, UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: ".")].contains(before)
            var q = p + needle.count
            while q < end, bytes[q] == 0x20 || bytes[q] == 0x09 { q += 1 }
            if okBefore, q < end, bytes[q] == UInt8(ascii: "=") { return p }
            from = p + 1
        }
        return nil
    }

    private func firstOccurrence(
        of text: String, from start: Int, to end: Int, followedBy ok: (UInt8) -> Bool
    ) -> Int? {
        let needle = Array(text.utf8)
        var from = start
        while let p = find(needle, from: from, to: end) {
            let next = p + needle.count
            if next >= end || ok(bytes[next]) { return p }
            from = p + 1
        }
        return nil
    }

    private func find(_ needle: [UInt8], from start: Int, to end: Int) -> Int? {
        guard !needle.isEmpty, end - start >= needle.count else { return nil }
        var i = start
        while i + needle.count <= end {
            if bytes[i] == needle[0] {
                var j = 1
                while j < needle.count, bytes[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}

/// "did you mean X?" suggestions for misspelled keys and names.
enum DidYouMean {
    /// The closest candidate within edit distance 2 (case-insensitive), or nil.
    static func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
        let lowered = word.lowercased()
        var best: (String, Int)? = nil
        for candidate in candidates where candidate != word {
            let d = editDistance(lowered, candidate.lowercased())
            if d <= 2, best == nil || d < best!.1 {
                best = (candidate, d)
            }
        }
        return best?.0
    }

    /// `"; did you mean \"x\"?"` or `""`.
    static func hint(for word: String, among candidates: some Sequence<String>) -> String {
        guard let s = suggestion(for: word, among: candidates) else { return "" }
        return "; did you mean \"\(s)\"?"
    }

    /// Levenshtein distance over Unicode scalars.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars)
        let b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

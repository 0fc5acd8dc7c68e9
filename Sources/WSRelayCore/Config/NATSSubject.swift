/// NATS subject filters as streams use them: dot-separated tokens where `*` matches one token and a final
/// `>` matches one or more.
enum NATSSubject {
    static func matches(_ subject: String, filter: String) -> Bool {
        let s = subject.split(separator: ".", omittingEmptySubsequences: false)
        let f = filter.split(separator: ".", omittingEmptySubsequences: false)
        for (i, token) in f.enumerated() {
            if token == ">" { return s.count > i }
            guard i < s.count else { return false }
            if token != "*" && token != s[i] { return false }
        }
        return s.count == f.count
    }

    /// Why `filter` is not a valid stream subject, or nil.
    static func filterProblem(_ filter: String) -> String? {
        let tokens = filter.split(separator: ".", omittingEmptySubsequences: false)
        for (i, token) in tokens.enumerated() {
            if token.isEmpty { return "subject \"\(filter)\" has an empty token" }
            if token == ">" && i != tokens.count - 1 { return "subject \"\(filter)\": \">\" must be the last token" }
            if token.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) {
                return "subject \"\(filter)\" contains a space or a non-ASCII character"
            }
        }
        return nil
    }
}

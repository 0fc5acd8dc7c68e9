extension StringProtocol {
    /// Without the optional whitespace (SP / HTAB) that HTTP fields and comma-separated lists allow around
    /// each value.
    var trimmingHTTPWhitespace: String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

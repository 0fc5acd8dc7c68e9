/// A strict parser of the Prometheus text exposition format 0.0.4, for checking what the metrics endpoint
/// serves: every line must be a `# HELP`, `# TYPE`, other comment or a sample; every sample must belong to a
/// family declared by `# TYPE` before it; a family's lines must be contiguous; no sample may repeat; counter
/// values must be non-negative; histogram buckets must be cumulative, end in `le="+Inf"`, and `+Inf` must
/// equal `_count`, with a `_sum` for every label set.
struct PrometheusText {
    struct Sample: Equatable, CustomStringConvertible {
        var name: String
        var labels: [String: String]
        var value: Double

        var description: String {
            let rendered = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",")
            return "\(name){\(rendered)} \(value)"
        }
    }

    struct Family {
        var name: String
        var type: String
        var help: String?
        var samples: [Sample] = []
    }

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    private(set) var families: [String: Family] = [:]

    var samples: [Sample] { families.values.flatMap(\.samples) }

    /// The value of the sample `name` whose labels are exactly `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// Samples named `name` whose labels include `labels`.
    func samples(_ name: String, matching labels: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    static let types: Set<String> = ["counter", "gauge", "histogram", "summary", "untyped"]

    static func parse(_ text: String) throws(ParseError) -> PrometheusText {
        var result = PrometheusText()
        guard text.isEmpty || text.hasSuffix("\n") else { throw ParseError(line: 0, message: "does not end with a line feed") }
        var finished: Set<String> = []  // families whose block has ended
        var current: String?
        var seen: Set<String> = []
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            lineNumber += 1
            let line = String(rawLine)
            func fail(_ message: String) -> ParseError { ParseError(line: lineNumber, message: "\(message): \(line)") }
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                guard parts.count >= 3, parts[1] == "HELP" || parts[1] == "TYPE" else { continue }  // other comment
                let name = parts[2]
                guard isMetricName(name) else { throw fail("bad metric name in \(parts[1])") }
                if current != name {
                    if let current { finished.insert(current) }
                    guard !finished.contains(name) else { throw fail("family \(name) appears in two places") }
                    current = name
                }
                let rest = parts.count > 3 ? parts[3] : ""
                if parts[1] == "TYPE" {
                    guard types.contains(rest) else { throw fail("unknown type") }
                    guard result.families[name] == nil || result.families[name]!.samples.isEmpty && result.families[name]!.type.isEmpty
                    else { throw fail("second TYPE, or TYPE after samples") }
                    let help = result.families[name]?.help
                    result.families[name] = Family(name: name, type: rest, help: help)
                } else {
                    guard result.families[name]?.help == nil else { throw fail("second HELP") }
                    guard let help = unescapeHelp(rest) else { throw fail("bad escape in HELP") }
                    result.families[name, default: Family(name: name, type: "")].help = help
                }
                continue
            }
            guard let sample = parseSample(line) else { throw fail("malformed sample") }
            guard let familyName = family(of: sample.name, in: result.families), !result.families[familyName]!.type.isEmpty else {
                throw fail("sample of an undeclared family (no # TYPE before it)")
            }
            if current != familyName {
                if let current { finished.insert(current) }
                guard !finished.contains(familyName) else { throw fail("family \(familyName) appears in two places") }
                current = familyName
            }
            let key = Sample(name: sample.name, labels: sample.labels, value: 0).description
            guard seen.insert(key).inserted else { throw fail("duplicate sample") }
            if result.families[familyName]!.type == "counter", !(sample.value >= 0) {
                throw fail("counter below zero")
            }
            result.families[familyName]!.samples.append(sample)
        }
        for family in result.families.values {
            guard !family.type.isEmpty else { throw ParseError(line: 0, message: "HELP without TYPE for \(family.name)") }
            if family.type == "histogram" { try checkHistogram(family) }
        }
        return result
    }

    /// The declared family a sample name belongs to: itself, or for histograms/summaries the name without
    /// `_bucket`/`_sum`/`_count`.
    private static func family(of name: String, in families: [String: Family]) -> String? {
        if let family = families[name], family.type != "histogram" { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let family = families[base], family.type == "histogram" || (family.type == "summary" && suffix != "_bucket") {
                return base
            }
        }
        return nil
    }

    private static func checkHistogram(_ family: Family) throws(ParseError) {
        var groups: [[String: String]: (buckets: [(Double, Double)], sum: Double?, count: Double?)] = [:]
        for sample in family.samples {
            var labels = sample.labels
            if sample.name == family.name + "_bucket" {
                guard let le = labels.removeValue(forKey: "le"), let bound = parseValue(le) else {
                    throw ParseError(line: 0, message: "bucket without a numeric le: \(sample)")
                }
                groups[labels, default: ([], nil, nil)].buckets.append((bound, sample.value))
            } else if sample.name == family.name + "_sum" {
                groups[labels, default: ([], nil, nil)].sum = sample.value
            } else if sample.name == family.name + "_count" {
                groups[labels, default: ([], nil, nil)].count = sample.value
            } else {
                throw ParseError(line: 0, message: "unexpected sample in histogram \(family.name): \(sample)")
            }
        }
        for (labels, group) in groups {
            guard group.sum != nil, let count = group.count else {
                throw ParseError(line: 0, message: "histogram \(family.name)\(labels) lacks _sum or _count")
            }
            let bounds = group.buckets.map(\.0)
            guard bounds == bounds.sorted(), Set(bounds).count == bounds.count else {
                throw ParseError(line: 0, message: "histogram \(family.name)\(labels): le not strictly increasing")
            }
            let counts = group.buckets.map(\.1)
            guard counts == counts.sorted() else {
                throw ParseError(line: 0, message: "histogram \(family.name)\(labels): buckets not cumulative: \(counts)")
            }
            guard let last = group.buckets.last, last.0 == .infinity, last.1 == count else {
                throw ParseError(line: 0, message: "histogram \(family.name)\(labels): +Inf bucket missing or != _count")
            }
        }
    }

    // MARK: - Lexing

    private static func isMetricName(_ s: some StringProtocol) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIILetter || first == "_" || first == ":" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == ":" }
    }

    private static func isLabelName(_ s: some StringProtocol) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }

    static func parseValue(_ s: String) -> Double? {
        switch s {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }) else { return nil }
            return Double(s)
        }
    }

    /// HELP text: `\\` and `\n` are the only escapes.
    private static func unescapeHelp(_ s: String) -> String? {
        var out = ""
        var escaping = false
        for c in s {
            if escaping {
                switch c {
                case "\\": out.append("\\")
                case "n": out.append("\n")
                default: return nil
                }
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                out.append(c)
            }
        }
        return escaping ? nil : out
    }

    /// `name{a="x",b="y"} value [timestamp]`
    private static func parseSample(_ line: String) -> Sample? {
        let chars = Array(line)
        var i = 0
        while i < chars.count, chars[i] != "{", chars[i] != " " { i += 1 }
        let name = String(chars[0..<i])
        guard isMetricName(name) else { return nil }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while true {
                guard i < chars.count else { return nil }
                if chars[i] == "}" { i += 1; break }
                let start = i
                while i < chars.count, chars[i] != "=" { i += 1 }
                let labelName = String(chars[start..<min(i, chars.count)])
                guard isLabelName(labelName), i + 1 < chars.count, chars[i + 1] == "\"" else { return nil }
                i += 2
                var value = ""
                var closed = false
                while i < chars.count {
                    let c = chars[i]
                    if c == "\\" {
                        guard i + 1 < chars.count else { return nil }
                        switch chars[i + 1] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: return nil
                        }
                        i += 2
                    } else if c == "\"" {
                        i += 1
                        closed = true
                        break
                    } else {
                        value.append(c)
                        i += 1
                    }
                }
                guard closed, labels[labelName] == nil else { return nil }
                labels[labelName] = value
                guard i < chars.count else { return nil }
                if chars[i] == "," { i += 1; continue }
                guard chars[i] == "}" else { return nil }
            }
        }
        guard i < chars.count, chars[i] == " " else { return nil }
        let fields = String(chars[(i + 1)...]).split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(fields.count), let value = parseValue(fields[0]) else { return nil }
        if fields.count == 2 { guard Int64(fields[1]) != nil else { return nil } }
        return Sample(name: name, labels: labels, value: value)
    }
}

private extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// Parses and formats the duration strings used in the configuration file.
///
/// A duration is one or more `<number><unit>` parts with units in decreasing order, each at most once:
/// `"30s"`, `"250ms"`, `"2m"`, `"1h"`, `"1m30s"`, `"1.5s"`. Units: `d`, `h`, `m`, `s`, `ms`, `us` (or `µs`), `ns`.
/// Negative durations and bare numbers are rejected. Precision is one nanosecond; a value that cannot be
/// represented exactly in nanoseconds (`"0.1ns"`) is rejected rather than rounded.
public enum DurationParser {
    /// Units from largest to smallest, with their length in nanoseconds.
    static let units: [(name: String, nanoseconds: Int64)] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ]

    public static func parse(_ s: String) -> Duration? {
        guard let ns = parseNanoseconds(s) else { return nil }
        return .nanoseconds(ns)
    }

    /// The shortest string in the accepted syntax that parses back to `d` (to the nanosecond).
    public static func format(_ d: Duration) -> String {
        let ns = d.nanosecondsClamped
        if ns < 0 {
            return "-" + formatNanoseconds(ns == Int64.min ? Int64.max : -ns)
        }
        return formatNanoseconds(ns)
    }

    // MARK: - Internals

    static func parseNanoseconds(_ s: String) -> Int64? {
        let chars = Array(s.unicodeScalars)
        guard !chars.isEmpty else { return nil }
        var i = 0
        var total: Int64 = 0
        var lastUnitIndex = -1

        func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }

        while i < chars.count {
            var intDigits = ""
            while i < chars.count, isDigit(chars[i]) {
                intDigits.unicodeScalars.append(chars[i])
                i += 1
            }
            var fracDigits = ""
            if i < chars.count, chars[i] == "." {
                i += 1
                while i < chars.count, isDigit(chars[i]) {
                    fracDigits.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard !fracDigits.isEmpty else { return nil }
            }
            guard !intDigits.isEmpty else { return nil }
            var unit = ""
            while i < chars.count, !isDigit(chars[i]), chars[i] != "." {
                unit.unicodeScalars.append(chars[i])
                i += 1
            }
            if unit == "µs" || unit == "μs" { unit = "us" }
            guard let unitIndex = units.firstIndex(where: { $0.name == unit }), unitIndex > lastUnitIndex else {
                return nil
            }
            lastUnitIndex = unitIndex
            guard let part = value(intDigits: intDigits, fracDigits: fracDigits, unit: units[unitIndex].nanoseconds)
            else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(part)
            guard !overflow else { return nil }
            total = sum
        }
        return total
    }

    /// `int.frac * unit` in nanoseconds, or nil when it overflows or is not a whole number of nanoseconds.
    private static func value(intDigits: String, fracDigits: String, unit: Int64) -> Int64? {
        // Leading zeros are harmless; strip them so long zero runs do not overflow. Up to 19 digits: the
        // formatter writes any Int64 of nanoseconds that way (found by fuzzing: "3333337474300000007ns");
        // Int64(_:) refuses what does not fit.
        let trimmedInt = intDigits.drop { $0 == "0" }
        guard trimmedInt.count <= 19, let whole = Int64(trimmedInt.isEmpty ? "0" : String(trimmedInt)) else {
            return nil
        }
        var (result, overflow) = whole.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }

        var frac = Substring(fracDigits)
        while frac.last == "0" { frac = frac.dropLast() }
        guard !frac.isEmpty else { return result }
        // A fraction with more than 14 significant digits cannot be whole nanoseconds of a day or less.
        guard frac.count <= 14, let numerator = Int64(frac) else { return nil }
        var denominator: Int64 = 1
        for _ in 0..<frac.count { denominator *= 10 }
        // numerator / denominator * unit must be an integer: reduce by the gcd first to avoid overflow.
        let g = gcd(unit, denominator)
        let reducedDenominator = denominator / g
        guard numerator % reducedDenominator == 0 else { return nil }
        let (fracPart, overflow2) = (numerator / reducedDenominator).multipliedReportingOverflow(by: unit / g)
        guard !overflow2 else { return nil }
        (result, overflow) = result.addingReportingOverflow(fracPart)
        return overflow ? nil : result
    }

    private static func gcd(_ a: Int64, _ b: Int64) -> Int64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    static func formatNanoseconds(_ n: Int64) -> String {
        if n == 0 { return "0s" }
        var candidates: [String] = []
        // Whole numbers of one unit.
        for unit in units where n % unit.nanoseconds == 0 {
            candidates.append("\(n / unit.nanoseconds)\(unit.name)")
        }
        // One unit with a decimal fraction ("1.5s"), only where the whole part is not zero.
        for unit in units where n > unit.nanoseconds && n % unit.nanoseconds != 0 {
            var remainder = n % unit.nanoseconds
            var digits = ""
            while remainder != 0, digits.count < 12 {
                remainder *= 10
                digits += String(remainder / unit.nanoseconds)
                remainder %= unit.nanoseconds
            }
            if remainder == 0 {
                candidates.append("\(n / unit.nanoseconds).\(digits)\(unit.name)")
            }
        }
        // Compound form ("1m30s").
        var rest = n
        var compound = ""
        var parts = 0
        for unit in units where rest >= unit.nanoseconds {
            compound += "\(rest / unit.nanoseconds)\(unit.name)"
            rest %= unit.nanoseconds
            parts += 1
        }
        if parts > 1 { candidates.append(compound) }
        // min(by:) keeps the first of equally short candidates: whole numbers of the largest unit win ties.
        return candidates.min { $0.count < $1.count } ?? "\(n)ns"
    }
}

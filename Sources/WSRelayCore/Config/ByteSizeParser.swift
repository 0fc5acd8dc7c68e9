/// Parses and formats byte sizes: `"16MiB"`, `"64KiB"`, `"1GiB"`, `"512B"`, `"1MB"` (decimal units),
/// optionally with one space before the unit (`"16 MiB"`) and a decimal fraction that comes out whole
/// (`"1.5KiB"`). A bare number string (`"4096"`) means bytes. The loader also accepts TOML integers as bytes.
public enum ByteSizeParser {
    static let units: [(name: String, bytes: Int)] = [
        ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
        ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000),
        ("B", 1),
    ]

    /// Spellings accepted besides the canonical ones above.
    static let aliases: [String: Int] = ["KB": 1_000, "": 1]

    public static func parse(_ s: String) -> Int? {
        var scalars = Substring(s)
        var digits = ""
        while let c = scalars.first, c.isASCII, c.isNumber {
            digits.append(c)
            scalars = scalars.dropFirst()
        }
        var fraction = ""
        if scalars.first == "." {
            scalars = scalars.dropFirst()
            while let c = scalars.first, c.isASCII, c.isNumber {
                fraction.append(c)
                scalars = scalars.dropFirst()
            }
            guard !fraction.isEmpty else { return nil }
        }
        guard !digits.isEmpty else { return nil }
        if scalars.first == " " { scalars = scalars.dropFirst() }
        let unitName = String(scalars)
        guard let unit = units.first(where: { $0.name == unitName })?.bytes ?? aliases[unitName] else { return nil }
        if unitName.isEmpty, !fraction.isEmpty || s.hasSuffix(" ") { return nil }

        let trimmed = digits.drop { $0 == "0" }
        // Up to 19 digits, as `format` writes them (Int.max has 19); `Int(_:)` refuses what overflows.
        guard trimmed.count <= 19, let whole = Int(trimmed.isEmpty ? "0" : String(trimmed)) else { return nil }
        var (result, overflow) = whole.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }

        var frac = Substring(fraction)
        while frac.last == "0" { frac = frac.dropLast() }
        if !frac.isEmpty {
            guard frac.count <= 12, let numerator = Int(frac) else { return nil }
            var denominator = 1
            for _ in 0..<frac.count { denominator *= 10 }
            let (product, overflow2) = numerator.multipliedReportingOverflow(by: unit)
            guard !overflow2, product % denominator == 0 else { return nil }
            (result, overflow) = result.addingReportingOverflow(product / denominator)
            guard !overflow else { return nil }
        }
        return result
    }

    /// The shortest whole-number spelling of `n` (binary units win ties): `16777216` gives `"16MiB"`.
    public static func format(_ n: Int) -> String {
        if n <= 0 { return "\(n)B" }
        var best: String? = nil
        for unit in units where n % unit.bytes == 0 {
            let candidate = "\(n / unit.bytes)\(unit.name)"
            if best == nil || candidate.count < best!.count { best = candidate }
        }
        return best ?? "\(n)B"
    }
}

import TOMLKit

/// The result of converting one TOML value.
enum ConfigConversion<T> {
    case ok(T)
    /// The TOML type is wrong: reported as "expected <expected>, found <value>".
    case wrongType
    /// The type is right but the value is not: the message is reported as is.
    case invalid(String)
}

/// Reads one TOML table for the loader: every read records its key as consumed, every problem is reported
/// with its full key path, and `finish` reports the keys nobody read.
///
/// Getters return nil when the key is absent or its value is invalid (an error has then been recorded), so
/// callers write `reader.duration("ping_interval") ?? default` and keep going: all errors are collected.
final class TableReader {
    let table: TOMLTable
    /// Key path of this table, e.g. `upstream[0].tls`.
    let path: String
    let diagnostics: DiagnosticCollector
    /// Keys present in the table (sorted: toml++ keeps keys in a sorted map).
    let keys: [String]
    private(set) var consumed: Set<String> = []

    init(table: TOMLTable, path: String, diagnostics: DiagnosticCollector) {
        self.table = table
        self.path = path
        self.diagnostics = diagnostics
        self.keys = table.keys
    }

    // MARK: - Key paths and reporting

    func keyPath(_ key: String) -> String { ConfigKeyPath.child(path, key) }

    func error(_ key: String, _ message: String) { diagnostics.error(keyPath(key), message) }
    func warning(_ key: String, _ message: String) { diagnostics.warning(keyPath(key), message) }

    func contains(_ key: String) -> Bool { table.contains(key: key) }

    /// The raw value, marking the key consumed.
    func raw(_ key: String) -> TOMLValueConvertible? {
        consumed.insert(key)
        return table[key]
    }

    func markConsumed(_ key: String) { consumed.insert(key) }

    /// The core of every typed getter.
    func read<T>(
        _ key: String, required: Bool = false, expected: String, secret: Bool = false,
        _ convert: (TOMLValueConvertible) -> ConfigConversion<T>
    ) -> T? {
        guard let value = raw(key) else {
            if required { error(key, "required key is missing: expected \(expected)") }
            return nil
        }
        switch convert(value) {
        case .ok(let v):
            return v
        case .wrongType:
            error(key, "expected \(expected), found \(ConfigValueDescription.describe(value, secret: secret))")
        case .invalid(let message):
            error(key, message)
        }
        return nil
    }

    /// Reports every key that was not consumed.
    ///
    /// - `allowed`: keys valid here (used for the "did you mean" hint; never reported).
    /// - `misplaced`: for keys that are valid elsewhere (another type or placement), the message to report.
    func finish(allowed: Set<String>, misplaced: (String) -> String? = { _ in nil }) {
        for key in keys where !consumed.contains(key) && !allowed.contains(key) {
            if let message = misplaced(key) {
                error(key, message)
            } else {
                error(key, "unknown key \"\(key)\"" + DidYouMean.hint(for: key, among: allowed.sorted()))
            }
        }
    }

    // MARK: - Scalars

    func string(_ key: String, required: Bool = false, allowEmpty: Bool = false, secret: Bool = false) -> String? {
        read(key, required: required, expected: "a string", secret: secret) { v in
            guard let s = v.string else { return .wrongType }
            if !allowEmpty && s.isEmpty { return .invalid("must not be empty") }
            return .ok(s)
        }
    }

    func bool(_ key: String, required: Bool = false) -> Bool? {
        read(key, required: required, expected: "a boolean (true or false)") { v in
            guard let b = v.bool else { return .wrongType }
            return .ok(b)
        }
    }

    func int(_ key: String, required: Bool = false, range: ClosedRange<Int>? = nil) -> Int? {
        read(key, required: required, expected: "an integer") { v in
            guard let i = v.int else { return .wrongType }
            if let range, !range.contains(i) {
                return .invalid("must be between \(range.lowerBound) and \(range.upperBound), found \(i)")
            }
            return .ok(i)
        }
    }

    /// A float; integers are accepted too.
    func double(_ key: String, required: Bool = false) -> Double? {
        read(key, required: required, expected: "a number") { v in
            if let d = v.double { return d.isFinite ? .ok(d) : .invalid("must be a finite number, found \(d)") }
            if let i = v.int { return .ok(Double(i)) }
            return .wrongType
        }
    }

    static let durationExpectation = "a duration string such as \"30s\", \"250ms\" or \"2m\""

    enum DurationMinimum { case zero, positive }

    func duration(_ key: String, required: Bool = false, minimum: DurationMinimum = .positive) -> Duration? {
        read(key, required: required, expected: Self.durationExpectation) { v in
            guard let s = v.string else { return .wrongType }
            guard let d = DurationParser.parse(s) else {
                return .invalid("invalid duration \(ConfigValueDescription.quote(s)): expected \(Self.durationExpectation)")
            }
            if minimum == .positive && d <= .zero {
                return .invalid("must be greater than 0, found \(ConfigValueDescription.quote(s))")
            }
            return .ok(d)
        }
    }

    static let sizeExpectation = "a size such as \"16MiB\", \"64KiB\" or \"1GiB\" (or an integer number of bytes)"

    /// A byte size: a size string or a TOML integer (bytes), at least `min` and at most `max`.
    func byteSize(_ key: String, required: Bool = false, min: Int = 0, max: Int? = nil) -> Int? {
        read(key, required: required, expected: Self.sizeExpectation) { v in
            let n: Int
            let shown: String
            if let i = v.int {
                n = i
                shown = "\(i)"
            } else if let s = v.string {
                guard let parsed = ByteSizeParser.parse(s) else {
                    return .invalid("invalid size \(ConfigValueDescription.quote(s)): expected \(Self.sizeExpectation)")
                }
                n = parsed
                shown = ConfigValueDescription.quote(s)
            } else {
                return .wrongType
            }
            if let max, n < min || n > max {
                return .invalid(
                    "must be between \(ByteSizeParser.format(min)) and \(ByteSizeParser.format(max)), found \(shown)"
                )
            }
            if n < min {
                return .invalid("must be at least \(ByteSizeParser.format(min)), found \(shown)")
            }
            return .ok(n)
        }
    }

    func absolutePath(_ key: String, required: Bool = false) -> String? {
        read(key, required: required, expected: "an absolute path string") { v in
            guard let s = v.string else { return .wrongType }
            if let problem = ConfigValidators.absolutePathProblem(s) { return .invalid(problem) }
            return .ok(s)
        }
    }

    /// One of a fixed set of strings.
    func choice(_ key: String, _ options: [String], required: Bool = false) -> String? {
        let expected = "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        return read(key, required: required, expected: expected) { v in
            guard let s = v.string else { return .wrongType }
            guard options.contains(s) else {
                return .invalid(
                    "expected \(expected), found \(ConfigValueDescription.quote(s))" + DidYouMean.hint(for: s, among: options)
                )
            }
            return .ok(s)
        }
    }

    func enumValue<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type, required: Bool = false) -> E?
    where E.RawValue == String {
        choice(key, E.allCases.map(\.rawValue), required: required).flatMap(E.init(rawValue:))
    }

    /// A Unix file mode: a TOML integer (write it in octal: `0o640`) or an octal string (`"0640"`).
    func fileMode(_ key: String) -> UInt32? {
        read(key, expected: "a file mode such as 0o640 or \"0640\"") { v in
            let mode: Int
            if let i = v.int {
                mode = i
                if i > 0o777 {
                    let asOctal = Int(String(i), radix: 8)
                    let hint = asOctal.map { $0 <= 0o777 ? "; write octal as 0o\(i) or \"0\(i)\"" : "" } ?? ""
                    return .invalid("file mode must be at most 0o777, found \(i) (decimal)" + hint)
                }
            } else if let s = v.string {
                var digits = Substring(s)
                if digits.hasPrefix("0o") { digits = digits.dropFirst(2) }
                guard !digits.isEmpty, digits.count <= 4, let m = Int(digits, radix: 8) else {
                    return .invalid("invalid file mode \(ConfigValueDescription.quote(s)): expected octal digits such as \"0640\"")
                }
                mode = m
                if m > 0o777 {
                    return .invalid("file mode must be at most 0o777, found \(ConfigValueDescription.quote(s))")
                }
            } else {
                return .wrongType
            }
            if mode < 0 { return .invalid("file mode must not be negative") }
            return .ok(UInt32(mode))
        }
    }

    // MARK: - Arrays and tables

    /// An array whose elements are converted one by one; element errors are reported at `key[j]`.
    /// Returns nil if the key is absent, is not an array, or any element is invalid.
    func array<T>(
        _ key: String, required: Bool = false, expected: String, elementExpected: String,
        _ convert: (TOMLValueConvertible) -> ConfigConversion<T>
    ) -> [T]? {
        guard let value = raw(key) else {
            if required { error(key, "required key is missing: expected \(expected)") }
            return nil
        }
        guard let array = value.array else {
            error(key, "expected \(expected), found \(ConfigValueDescription.describe(value, secret: false))")
            return nil
        }
        var result: [T] = []
        var failed = false
        for j in 0..<array.count {
            let element = array[j]
            let elementPath = ConfigKeyPath.index(keyPath(key), j)
            switch convert(element) {
            case .ok(let v): result.append(v)
            case .wrongType:
                diagnostics.error(
                    elementPath,
                    "expected \(elementExpected), found \(ConfigValueDescription.describe(element, secret: false))"
                )
                failed = true
            case .invalid(let message):
                diagnostics.error(elementPath, message)
                failed = true
            }
        }
        return failed ? nil : result
    }

    func stringArray(
        _ key: String, required: Bool = false, elementExpected: String = "a string",
        validate: (String) -> String? = { _ in nil }
    ) -> [String]? {
        array(key, required: required, expected: "an array of strings", elementExpected: elementExpected) { v in
            guard let s = v.string else { return .wrongType }
            if let problem = validate(s) { return .invalid(problem) }
            return .ok(s)
        }
    }

    func intArray(_ key: String, range: ClosedRange<Int>, what: String = "an integer") -> [Int]? {
        let elementExpected = "\(what) from \(range.lowerBound) to \(range.upperBound)"
        return array(key, expected: "an array of integers", elementExpected: elementExpected) { v in
            guard let i = v.int else { return .wrongType }
            guard range.contains(i) else { return .invalid("expected \(elementExpected), found \(i)") }
            return .ok(i)
        }
    }

    /// Unix user or group IDs.
    func idArray(_ key: String) -> [UInt32]? {
        intArray(key, range: 0...Int(UInt32.max - 1), what: "a numeric ID").map { $0.map { UInt32($0) } }
    }

    /// A sub-table (`[parent.key]` or an inline table).
    func subtable(_ key: String, required: Bool = false) -> TableReader? {
        read(key, required: required, expected: "a table") { v in
            guard let t = v.table else { return .wrongType }
            return .ok(TableReader(table: t, path: keyPath(key), diagnostics: diagnostics))
        }
    }

    /// An array of tables (`[[key]]`), each reader at `key[i]`.
    func arrayOfTables(_ key: String) -> [TableReader]? {
        guard let value = raw(key) else { return nil }
        let expected = "an array of tables ([[\(key)]] sections)"
        guard let array = value.array else {
            error(key, "expected \(expected), found \(ConfigValueDescription.describe(value, secret: false))")
            return nil
        }
        var result: [TableReader] = []
        for i in 0..<array.count {
            let element = array[i]
            let elementPath = ConfigKeyPath.index(keyPath(key), i)
            if let t = element.table {
                result.append(TableReader(table: t, path: elementPath, diagnostics: diagnostics))
            } else {
                diagnostics.error(
                    elementPath, "expected a table, found \(ConfigValueDescription.describe(element, secret: false))"
                )
            }
        }
        return result
    }
}

/// Builds key paths such as `upstream[1].headers."X Bad"`.
enum ConfigKeyPath {
    static func child(_ base: String, _ key: String) -> String {
        let part = isBare(key) ? key : TOMLText.quoted(key)
        return base.isEmpty ? part : base + "." + part
    }

    static func index(_ base: String, _ i: Int) -> String { "\(base)[\(i)]" }

    /// Whether `key` can be written as a bare TOML key.
    static func isBare(_ key: String) -> Bool {
        !key.isEmpty && key.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
        }
    }
}

/// Describes a found value for messages, without ever showing a secret.
enum ConfigValueDescription {
    static func describe(_ v: TOMLValueConvertible, secret: Bool) -> String {
        switch v.type {
        case .string:
            return secret ? "a string" : "string " + quote(v.string ?? "")
        case .int:
            return secret ? "an integer" : "integer \(v.int.map(String.init) ?? "")"
        case .double:
            return secret ? "a floating-point number" : "floating-point number \(v.double.map { "\($0)" } ?? "")"
        case .bool:
            return secret ? "a boolean" : "boolean \(v.bool.map { "\($0)" } ?? "")"
        case .array: return "an array"
        case .table: return "a table"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }

    /// A quoted, escaped, length-limited rendering of a (non-secret) string.
    static func quote(_ s: String) -> String {
        var shown = s
        if shown.count > 80 { shown = String(shown.prefix(77)) + "..." }
        return TOMLText.quoted(shown)
    }
}

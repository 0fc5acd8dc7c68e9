/// One problem found while loading a configuration file.
///
/// Messages say what was expected and what was found, but never echo a secret value.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: Sendable, Equatable {
        case error, warning
    }

    public var severity: Severity
    /// The configuration file path as given to the loader.
    public var file: String
    /// Where in the file, e.g. `upstream[1].ping_interval`; `""` for file-level problems.
    public var keyPath: String
    public var message: String

    public init(severity: Severity, file: String, keyPath: String, message: String) {
        self.severity = severity
        self.file = file
        self.keyPath = keyPath
        self.message = message
    }

    public var isError: Bool { severity == .error }

    /// `<file>: <keyPath>: <message>`, prefixed with `warning: ` for warnings.
    /// The key path part is left out for file-level problems.
    public var description: String {
        let location = keyPath.isEmpty ? "\(file): " : "\(file): \(keyPath): "
        let prefix = severity == .warning ? "warning: " : ""
        return prefix + location + message
    }
}

/// Loading failed: every error found (and any warnings), collected in one pass.
public struct ConfigLoadError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]

    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .warning } }

    /// One diagnostic per line: errors first, then warnings, each group in the order found.
    public var description: String {
        (errors + warnings).map(\.description).joined(separator: "\n")
    }
}

/// A successfully loaded configuration together with the warnings found while loading it.
public struct LoadedConfiguration: Sendable {
    public var configuration: Configuration
    public var warnings: [ConfigDiagnostic]

    public init(configuration: Configuration, warnings: [ConfigDiagnostic] = []) {
        self.configuration = configuration
        self.warnings = warnings
    }
}

/// Collects diagnostics for one file while the loader walks it.
final class DiagnosticCollector {
    let file: String
    private(set) var diagnostics: [ConfigDiagnostic] = []

    init(file: String) {
        self.file = file
    }

    func error(_ keyPath: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .error, file: file, keyPath: keyPath, message: message))
    }

    func warning(_ keyPath: String, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .warning, file: file, keyPath: keyPath, message: message))
    }

    var errorCount: Int { diagnostics.lazy.filter { $0.severity == .error }.count }
    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
    var warnings: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .warning } }
}

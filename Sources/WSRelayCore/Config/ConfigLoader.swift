import Foundation
import TOMLKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Loads a TOML configuration file into a validated `Configuration`.
///
/// Every problem is collected and reported at once, each with its key path; only a TOML syntax error stops
/// loading early (it is then the single diagnostic). Secret values are never read here: secrets stay
/// `SecretSource` references until the credential code needs them.
public enum ConfigLoader {
    /// Largest configuration file accepted.
    static let maximumFileSize = 16 * 1024 * 1024

    /// Reads and validates the file at `path`. A missing or unreadable file is reported as a diagnostic.
    /// `environment` is used to warn about `*_env` secrets naming variables that are not set.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Result<LoadedConfiguration, ConfigLoadError> {
        switch readFile(path) {
        case .failure(let failure):
            return .failure(
                ConfigLoadError(diagnostics: [
                    ConfigDiagnostic(severity: .error, file: path, keyPath: "", message: failure.message)
                ])
            )
        case .success(let text):
            return parse(toml: text, file: path, environment: environment)
        }
    }

    /// Where the control socket of the daemon started from `path` is, for the control CLI commands. Falls back
    /// to reading just `[daemon] control_socket` when the file has errors elsewhere (an operator must still
    /// be able to reach the running daemon, e.g. to reload a fixed file), then to the default.
    public static func controlSocketPath(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        if case .success(let loaded) = load(path: path, environment: environment) {
            return loaded.configuration.daemon.controlSocket
        }
        if case .success(let text) = readFile(path), let table = try? TOMLTable(string: text),
           let socket = table["daemon"]?.table?["control_socket"]?.string, socket.hasPrefix("/") {
            return socket
        }
        return DaemonSettings().controlSocket
    }

    /// Validates configuration text; `file` is only used in diagnostics.
    public static func parse(toml: String, file: String) -> Result<LoadedConfiguration, ConfigLoadError> {
        parse(toml: toml, file: file, environment: nil)
    }

    /// As `parse(toml:file:)`; with an environment, also warns about `*_env` secrets whose variable is unset.
    static func parse(
        toml: String, file: String, environment: [String: String]?
    ) -> Result<LoadedConfiguration, ConfigLoadError> {
        let diagnostics = DiagnosticCollector(file: file)
        if toml.unicodeScalars.contains("\0") {
            diagnostics.error("", "file contains a NUL byte; is it a text file?")
            return .failure(ConfigLoadError(diagnostics: diagnostics.diagnostics))
        }
        if let line = TOMLHeaderGuard.firstBadHeaderLine(toml) {
            diagnostics.error(
                "line \(line)", "TOML syntax error: expected a table name after '[' or '[[', or a value where '}' is"
            )
            return .failure(ConfigLoadError(diagnostics: diagnostics.diagnostics))
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: toml)
        } catch let error as TOMLParseError {
            let position = "line \(error.source.begin.line), column \(error.source.begin.column)"
            diagnostics.error(position, "TOML syntax error: \(error.description)")
            return .failure(ConfigLoadError(diagnostics: diagnostics.diagnostics))
        } catch {
            diagnostics.error("", "TOML syntax error: \(error)")
            return .failure(ConfigLoadError(diagnostics: diagnostics.diagnostics))
        }

        let builder = ConfigBuilder(diagnostics: diagnostics, order: SourceOrder(source: toml), environment: environment)
        let configuration = builder.build(TableReader(table: table, path: "", diagnostics: diagnostics))
        if diagnostics.hasErrors {
            return .failure(ConfigLoadError(diagnostics: diagnostics.diagnostics))
        }
        return .success(LoadedConfiguration(configuration: configuration, warnings: diagnostics.warnings))
    }

    struct ReadFailure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    /// The file's text, or a message saying why it cannot be read.
    static func readFile(_ path: String) -> Result<String, ReadFailure> {
        if path.isEmpty { return .failure(ReadFailure("no configuration file path given")) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            return .failure(ReadFailure("cannot open configuration file: \(String(cString: strerror(errno)))"))
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure("cannot read configuration file: \(String(cString: strerror(errno)))"))
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            if bytes.count > maximumFileSize {
                return .failure(ReadFailure("configuration file is larger than \(ByteSizeParser.format(maximumFileSize))"))
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(ReadFailure("configuration file is not valid UTF-8"))
        }
        return .success(text)
    }
}

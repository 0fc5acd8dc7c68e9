import Foundation
import Testing

@testable import WSRelayCore

/// Helpers shared by the Config* test files.
enum ConfigTestSupport {
    static let upstream = """
        [[upstream]]
        name = "feed"
        url = "wss://stream.example.com/feed"

        """

    static func parse(_ toml: String, file: String = "test.toml") -> Result<LoadedConfiguration, ConfigLoadError> {
        ConfigLoader.parse(toml: toml, file: file)
    }

    /// The configuration, recording an issue (with all diagnostics) if loading failed.
    static func load(_ toml: String, sourceLocation: SourceLocation = #_sourceLocation) -> LoadedConfiguration? {
        switch parse(toml) {
        case .success(let loaded): return loaded
        case .failure(let error):
            Issue.record("unexpected load failure:\n\(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// The error diagnostics, recording an issue if loading succeeded.
    static func errors(_ toml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigDiagnostic] {
        switch parse(toml) {
        case .success:
            Issue.record("configuration unexpectedly loaded", sourceLocation: sourceLocation)
            return []
        case .failure(let error):
            return error.errors
        }
    }

    /// Expects exactly one error, at `keyPath`, whose message contains every part.
    static func expectError(
        _ toml: String, at keyPath: String, _ parts: String..., sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let errs = errors(toml, sourceLocation: sourceLocation)
        #expect(errs.count == 1, "\(errs.map(\.description))", sourceLocation: sourceLocation)
        guard let e = errs.first(where: { $0.keyPath == keyPath }) else {
            Issue.record("no error at \(keyPath); got \(errs.map(\.description))", sourceLocation: sourceLocation)
            return
        }
        for part in parts {
            #expect(e.message.contains(part), "\(e.message) should contain \(part)", sourceLocation: sourceLocation)
        }
    }

    static func warnings(_ toml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigDiagnostic] {
        load(toml, sourceLocation: sourceLocation)?.warnings ?? []
    }

    /// `Tests/Fixtures/<name>`, found relative to this source file.
    static func fixturesDirectory(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
            .appendingPathComponent(name)
    }

    static func fixtureFiles(_ name: String) -> [String] {
        let dir = fixturesDirectory(name)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".toml") }.sorted()
    }

    /// The sample configuration shipped in `etc/wsrelay/wsrelay.toml`.
    static var samplePath: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("etc/wsrelay/wsrelay.toml").path
    }
}

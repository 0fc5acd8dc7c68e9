import Foundation
import Testing
import WSRelayTestSupport

/// Bad configs through the real binary: every fixture in Tests/Fixtures/bad-configs must make `check-config`
/// and `run` exit 78 and name what is wrong. Each fixture lists `# expect: <substring>` lines.
@Suite("config errors through the binary", .mayBlock)
struct ConfigCommandTests {
    static let fixtures: [String] = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/bad-configs").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasSuffix(".toml") }.sorted().map { "\(dir)/\($0)" }
    }()

    static func expectations(_ path: String) -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            line.hasPrefix("# expect: ") ? String(line.dropFirst("# expect: ".count)) : nil
        }
    }

    @Test("there are at least 12 bad-config fixtures")
    func enoughFixtures() {
        #expect(Self.fixtures.count >= 12)
    }

    @Test("check-config exits 78 and names the key path", arguments: fixtures)
    func checkConfigRejects(_ path: String) throws {
        let dir = try TemporaryDirectory()
        let result = try WSRelayProcess.run(["check-config", "--config", path], directory: dir)
        #expect(result.status == 78, "\(path): \(result.stderr)")
        let wanted = Self.expectations(path)
        #expect(!wanted.isEmpty, "\(path) has no # expect: lines")
        for substring in wanted {
            #expect(result.stderr.contains(substring), "\(path): expected \(substring) in:\n\(result.stderr)")
        }
        #expect(result.stderr.contains(path), "errors must name the file")
    }

    @Test("run with a bad config exits 78 without starting", arguments: fixtures.prefix(4))
    func runRejects(_ path: String) throws {
        let dir = try TemporaryDirectory()
        let result = try WSRelayProcess.run(["run", "--config", path], directory: dir)
        #expect(result.status == 78, "\(path): \(result.stderr)")
    }

    @Test("all errors are reported at once")
    func allErrorsAtOnce() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", """
            [daemon]
            log_level = "loud"
            shutdown_timeout = 10

            [[upstream]]
            name = "a"
            url = "http://example.invalid/"
            ping_interval = "soon"

            [[upstream]]
            name = "a"
            url = "ws://127.0.0.1:1/"
            auth = "nope"
            """)
        let result = try WSRelayProcess.run(["check-config", "--config", config], directory: dir)
        #expect(result.status == 78)
        for path in ["daemon.log_level", "daemon.shutdown_timeout", "upstream[0].url", "upstream[0].ping_interval",
                     "upstream[1].name", "upstream[1].auth"] {
            #expect(result.stderr.contains(path), "missing \(path) in:\n\(result.stderr)")
        }
    }

    @Test("check-config prints the effective config with secrets redacted, and warns about inline tokens")
    func effectiveConfigRedacted() throws {
        let dir = try TemporaryDirectory()
        let secret = "s3cr3t-token-value-4242"
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir).replacingOccurrences(
            of: "url = \"ws://127.0.0.1:9/feed\"", with: "url = \"ws://127.0.0.1:9/feed\"\nauth = \"main\"")
            + "\n[auth.main]\ntype = \"static\"\ntoken = \"\(secret)\"\n")
        let result = try WSRelayProcess.run(["check-config", "--config", config], directory: dir)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("ping_interval"), "defaults should be shown: \(result.stdout)")
        #expect(result.stdout.contains("redacted"))
        #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret), "secret leaked")
        #expect(result.stderr.contains("auth.main"), "inline token should be warned about: \(result.stderr)")
    }

    @Test("the shipped sample config is valid")
    func sampleConfigValid() throws {
        let dir = try TemporaryDirectory()
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("etc/wsrelay/wsrelay.toml").path
        let result = try WSRelayProcess.run(["check-config", "--config", sample], directory: dir)
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test("a missing config file is a config error (78) naming the path")
    func missingFile() throws {
        let dir = try TemporaryDirectory()
        let result = try WSRelayProcess.run(["check-config", "--config", dir.file("nope.toml")], directory: dir)
        #expect(result.status == 78)
        #expect(result.stderr.contains("nope.toml"))
    }

    @Test("WSRELAY_CONFIG is the default config path")
    func configFromEnvironment() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let result = try WSRelayProcess.run(["check-config"], directory: dir, environment: ["WSRELAY_CONFIG": config])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains(config))
    }
}

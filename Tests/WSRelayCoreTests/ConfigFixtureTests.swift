import Foundation
import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

/// Runs every `Tests/Fixtures/bad-configs/NN-name.toml`: each must fail to load, and the error output must
/// contain every substring given in its leading `# expect: <substring>` comment lines.
@Suite("Config: fixture files")
struct ConfigFixtureTests {
    static let badFixtures = ConfigTestSupport.fixtureFiles("bad-configs")
    static let goodFixtures = ConfigTestSupport.fixtureFiles("good-configs")

    /// The `# expect:` substrings at the top of a fixture.
    static func expectations(in text: String) -> [String] {
        var result: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("#") else { break }
            let prefix = "# expect: "
            if line.hasPrefix(prefix) { result.append(String(line.dropFirst(prefix.count))) }
        }
        return result
    }

    @Test func thereAreEnoughBadFixtures() {
        #expect(Self.badFixtures.count >= 14)
        for name in Self.badFixtures {
            #expect(name.range(of: #"^[0-9]{2}-[a-z0-9-]+\.toml$"#, options: .regularExpression) != nil, "\(name)")
        }
    }

    @Test(arguments: badFixtures)
    func badFixtureFails(name: String) throws {
        let path = S.fixturesDirectory("bad-configs").appendingPathComponent(name).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let expectations = Self.expectations(in: text)
        #expect(!expectations.isEmpty, "\(name) has no # expect: lines")
        switch ConfigLoader.load(path: path, environment: [:]) {
        case .success:
            Issue.record("\(name) loaded successfully")
        case .failure(let error):
            let output = error.description
            #expect(!error.errors.isEmpty)
            for expected in expectations {
                #expect(output.contains(expected), "\(name): missing \"\(expected)\" in:\n\(output)")
            }
            // Every diagnostic names the file as given.
            #expect(error.diagnostics.allSatisfy { $0.file == path })
        }
    }

    @Test func credentialsInURLsAreNotEchoed() throws {
        let path = S.fixturesDirectory("bad-configs").appendingPathComponent("27-url-with-credentials.toml").path
        guard case .failure(let error) = ConfigLoader.load(path: path, environment: [:]) else {
            Issue.record("loaded")
            return
        }
        #expect(!error.description.contains("hunter2"))
    }

    @Test(arguments: goodFixtures)
    func goodFixtureLoadsAndRoundTrips(name: String) throws {
        let path = S.fixturesDirectory("good-configs").appendingPathComponent(name).path
        let loaded = try ConfigLoader.load(path: path, environment: [:]).get()
        let rendered = ConfigRenderer.render(loaded.configuration)
        let again = try ConfigLoader.parse(toml: rendered, file: "rendered").get()
        #expect(again.configuration == loaded.configuration, "rendered:\n\(rendered)")
    }

    @Test func fullFixtureDetails() throws {
        let path = S.fixturesDirectory("good-configs").appendingPathComponent("full.toml").path
        let loaded = try ConfigLoader.load(path: path, environment: ["IDP_SECRET": "x"]).get()
        let c = loaded.configuration
        #expect(c.upstreams.map(\.name) == ["trades", "quotes.v2", "cmd-feed", "file-feed", "json-feed", "cc-feed"])
        #expect(c.auth.map(\.name) == ["zz-static", "idp", "cmd", "from-file", "custom", "cc"])
        #expect(c.upstreams[0].url.host == "stream.example.com")
        #expect(c.upstreams[0].headers.map(\.name) == ["X-Zeta", "User-Agent", "X-Alpha"])
        #expect(c.upstreams[1].url == WebSocketURL(secure: false, host: "::1", port: 9000, target: "/"))
        #expect(c.upstreams[1].maxMessageSize == 65536)
        #expect(c.sinks.count == 4)
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
    }
}

import Foundation
import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

@Suite("Config: sample etc/wsrelay/wsrelay.toml")
struct ConfigSampleTests {
    @Test func sampleLoads() throws {
        let loaded = try ConfigLoader.load(path: S.samplePath, environment: [:]).get()
        let c = loaded.configuration
        #expect(c.upstreams.count == 1)
        #expect(c.upstreams[0].auth == "example")
        #expect(c.auth.map(\.name) == ["example"])
        #expect(c.sinks.count == 1)
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        // The sample spells out the defaults: apart from what the example sets, it equals the built-in ones.
        #expect(c.daemon == DaemonSettings())
        #expect(c.upstreams[0].reconnect == ReconnectSettings())
        #expect(c.upstreams[0].tls == TLSSettings())
        #expect(c.upstreams[0].pingInterval == .seconds(30))
        #expect(c.upstreams[0].maxMessageSize == 16 << 20)
    }

    @Test func sampleDocumentsEveryKey() throws {
        let text = try String(contentsOfFile: S.samplePath, encoding: .utf8)
        var missing: [String] = []
        for key in ConfigSchema.allKeyNames.sorted() {
            let forms = ["\(key) =", "[\(key)]", "[[\(key)]]", ".\(key)]", "[\(key)."]
            if !forms.contains(where: text.contains) { missing.append(key) }
        }
        #expect(missing.isEmpty, "keys not documented in the sample: \(missing)")
        // Every enumerated value is mentioned too.
        for value in ConfigSchema.authTypes + ConfigSchema.placements + ConfigSchema.sinkTypes {
            #expect(text.contains("\"\(value)\""), "\(value)")
        }
    }

    @Test func sampleRendersAndRoundTrips() throws {
        let loaded = try ConfigLoader.load(path: S.samplePath, environment: [:]).get()
        let text = ConfigRenderer.render(loaded.configuration)
        let again = try ConfigLoader.parse(toml: text, file: "rendered").get()
        #expect(again.configuration == loaded.configuration)
    }
}

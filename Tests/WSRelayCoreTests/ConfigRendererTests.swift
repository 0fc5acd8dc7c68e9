import Foundation
import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

@Suite("Config: renderer")
struct ConfigRendererTests {
    @Test func defaultsAreRenderedAndRoundTrip() throws {
        let loaded = try #require(S.load(S.upstream))
        let text = ConfigRenderer.render(loaded.configuration)
        for line in [
            "state_dir = \"/var/lib/wsrelay\"", "log_level = \"info\"", "log_target = \"auto\"",
            "shutdown_timeout = \"10s\"", "control_socket = \"/run/wsrelay/control.sock\"", "control_allow_gids = []",
            "# listen is not set", "ping_interval = \"30s\"", "max_message_size = \"16MiB\"",
            "refresh_on_close_codes = [4001, 4003]", "refresh_on_status = [401]", "fatal_close_codes = []",
            "multiplier = 2.0", "insecure_skip_verify = false", "# proxy is not set", "[upstream.reconnect]",
            "[upstream.tls]", "reset_after = \"1m\"",
        ] {
            #expect(text.contains(line), "missing \(line) in\n\(text)")
        }
        let again = try ConfigLoader.parse(toml: text, file: "rendered").get()
        #expect(again.configuration == loaded.configuration)
        #expect(again.warnings.isEmpty)
    }

    @Test func everyProgrammaticVariantRoundTrips() throws {
        var c = Configuration()
        c.daemon.pidFile = "/run/x.pid"
        c.daemon.logLevel = .critical
        c.metrics.listen = "127.0.0.1:1"
        var u = UpstreamSettings(name: "a", url: WebSocketURL(secure: true, host: "::1", port: 8443, target: "/x?y=\"z\""))
        u.auth = "s"
        u.subscribe = [.text("line\nbreak \"quoted\" \\ tab\t"), .binary([0, 255, 7]), .binary([])]
        u.headers = [HeaderField(name: "Zz", value: "1"), HeaderField(name: "Aa", value: "ü")]
        u.idleTimeout = .milliseconds(1500)
        u.reconnect.multiplier = 1.25
        u.tls.insecureSkipVerify = true
        c.upstreams = [u]
        var s = AuthSettings(name: "s", provider: .staticToken(.environment("TOKEN")))
        s.placement = .message(template: "{\"t\":\"{token}\"}", okPattern: nil, timeout: .seconds(3))
        c.auth = [s]
        var unix = UnixSinkSettings(path: nil)
        unix.listenFDName = "fd"
        var sink = SinkSettings(kind: .unix(unix))
        sink.upstreams = ["a"]
        c.sinks = [sink, SinkSettings(kind: .journal)]

        let text = ConfigRenderer.render(c)
        let again = try ConfigLoader.parse(toml: text, file: "rendered").get()
        #expect(again.configuration == c, "rendered:\n\(text)")
    }

    @Test func inlineSecretsAreRedacted() throws {
        let toml = S.upstream + """
            auth = "s"
            [auth.s]
            type = "static"
            token = "hunter2"
            """
        let loaded = try #require(S.load(toml))
        let text = ConfigRenderer.render(loaded.configuration)
        #expect(!text.contains("hunter2"))
        // sha256("hunter2") = f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7
        #expect(text.contains("token = \"<redacted sha256:f52fbd32>\""))
        #expect(ConfigRenderer.redacted("hunter2") == "<redacted sha256:f52fbd32>")
    }

    @Test func secretReferencesRenderAsReferences() throws {
        let toml = S.upstream + """
            auth = "o"
            [auth.o]
            type = "oauth2"
            token_url = "https://idp/token"
            client_id = "c"
            client_secret_file = "/etc/secret"
            refresh_token_credential = "rt"
            [auth.h]
            type = "http_json"
            url = "https://h/"
            refresh_token_env = "RT"
            """
        let text = ConfigRenderer.render(try #require(S.load(toml)).configuration)
        #expect(text.contains("client_secret_file = \"/etc/secret\""))
        #expect(text.contains("refresh_token_credential = \"rt\""))
        #expect(text.contains("refresh_token_env = \"RT\""))
        #expect(text.contains("[auth.o]"))
        #expect(text.contains("[auth.o.tls]"))
    }

    @Test func modesRenderInOctal() throws {
        let loaded = try #require(S.load(S.upstream + "[[sink]]\ntype = \"file\"\npath = \"/o\"\nmode = \"0600\"\n"))
        let text = ConfigRenderer.render(loaded.configuration)
        #expect(text.contains("mode = 0o600"))
        #expect(text.contains("buffer = \"64MiB\""))
        #expect(text.contains("# rotate_size is not set"))
    }
}

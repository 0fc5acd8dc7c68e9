import Foundation
import Logging
import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

@Suite("Config: loader basics")
struct ConfigLoaderBasicsTests {
    @Test func minimalConfigGetsAllDefaults() throws {
        let loaded = try #require(S.load(S.upstream))
        let c = loaded.configuration
        #expect(loaded.warnings.isEmpty)
        #expect(c.daemon == DaemonSettings())
        #expect(c.metrics == MetricsSettings())
        #expect(c.auth.isEmpty)
        #expect(c.sinks.isEmpty)
        #expect(c.upstreams.count == 1)
        let u = c.upstreams[0]
        var expected = UpstreamSettings(
            name: "feed", url: WebSocketURL(secure: true, host: "stream.example.com", port: 443, target: "/feed")
        )
        expected.pingInterval = .seconds(30)
        #expect(u == expected)
        #expect(u.refreshOnCloseCodes == [4001, 4003])
        #expect(u.refreshOnStatus == [401])
        #expect(u.maxMessageSize == 16 << 20)
        #expect(u.proxy == nil)
    }

    @Test func missingFileIsADiagnostic() {
        let path = "/nonexistent/wsrelay-\(UUID().uuidString).toml"
        guard case .failure(let error) = ConfigLoader.load(path: path, environment: [:]) else {
            Issue.record("loaded a missing file")
            return
        }
        #expect(error.diagnostics.count == 1)
        #expect(error.diagnostics[0].keyPath == "")
        #expect(error.diagnostics[0].file == path)
        #expect(error.description == "\(path): cannot open configuration file: No such file or directory")
    }

    @Test func directoryIsADiagnostic() {
        guard case .failure(let error) = ConfigLoader.load(path: "/tmp", environment: [:]) else {
            Issue.record("loaded a directory")
            return
        }
        #expect(error.description.contains("/tmp: cannot read configuration file"))
    }

    @Test func loadsFromDisk() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wsrelay-\(UUID().uuidString).toml").path
        try S.upstream.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try ConfigLoader.load(path: path, environment: [:]).get()
        #expect(loaded.configuration.upstreams.map(\.name) == ["feed"])
    }

    @Test func syntaxErrorIsOneDiagnosticWithPosition() {
        let toml = "[[upstream]]\nname = \"feed\"\nurl = \n"
        guard case .failure(let error) = S.parse(toml) else {
            Issue.record("parsed")
            return
        }
        #expect(error.diagnostics.count == 1)
        let d = error.diagnostics[0]
        #expect(d.keyPath == "line 3, column 7")
        #expect(d.description.hasPrefix("test.toml: line 3, column 7: TOML syntax error: "))
    }

    @Test func diagnosticDescriptions() {
        let e = ConfigDiagnostic(severity: .error, file: "f.toml", keyPath: "upstream[1].ping_interval", message: "bad")
        #expect(e.description == "f.toml: upstream[1].ping_interval: bad")
        let w = ConfigDiagnostic(severity: .warning, file: "f.toml", keyPath: "auth.x", message: "unused")
        #expect(w.description == "warning: f.toml: auth.x: unused")
        let fileLevel = ConfigDiagnostic(severity: .error, file: "f.toml", keyPath: "", message: "cannot open")
        #expect(fileLevel.description == "f.toml: cannot open")
        let error = ConfigLoadError(diagnostics: [w, e])
        #expect(error.description == "f.toml: upstream[1].ping_interval: bad\nwarning: f.toml: auth.x: unused")
    }

    @Test func allErrorsAtOnce() {
        let toml = """
            [daemon]
            log_level = "loud"
            shutdown_timeout = 10

            [[upstream]]
            name = "feed"
            url = "http://stream.example.com/feed"
            pong_timeout = "5 seconds"
            colour = "blue"

            [[sink]]
            type = "stdout"
            upstreams = ["nope"]
            """
        let errs = S.errors(toml)
        #expect(
            errs.map(\.keyPath).sorted() == [
                "daemon.log_level", "daemon.shutdown_timeout", "sink[0].upstreams[0]", "upstream[0].colour",
                "upstream[0].pong_timeout", "upstream[0].url",
            ]
        )
    }

    @Test func fiveDistinctMistakesGiveFiveDiagnostics() {
        let toml = """
            [daemon]
            log_level = "loud"

            [metrics]
            listen = "0.0.0.0:9464"

            [[upstream]]
            name = "feed"
            url = "wss://stream.example.com/feed"
            ping_intervl = "30s"
            max_message_size = "2GiB"

            [[sink]]
            type = "stdout"
            upstreams = ["nope"]
            """
        let errs = S.errors(toml)
        #expect(
            errs.map(\.keyPath).sorted() == [
                "daemon.log_level", "metrics.listen", "sink[0].upstreams[0]", "upstream[0].max_message_size",
                "upstream[0].ping_intervl",
            ]
        )
    }

    @Test func unknownKeysEverywhereWithHints() {
        let toml = """
            [deamon]
            [daemon]
            log_levle = "info"
            [metrics]
            lisen = "127.0.0.1:9464"
            [[upstream]]
            name = "feed"
            url = "wss://stream.example.com/feed"
            [upstream.reconect]
            [upstream.tls]
            ca_fiel = "/x"
            [upstream.reconnect]
            inital = "1s"
            [[sink]]
            type = "stdout"
            evnts = true
            """
        let errs = S.errors(toml)
        let byPath = Dictionary(errs.map { ($0.keyPath, $0.message) }, uniquingKeysWith: { a, _ in a })
        #expect(byPath["deamon"]?.contains("did you mean \"daemon\"?") == true)
        #expect(byPath["daemon.log_levle"]?.contains("did you mean \"log_level\"?") == true)
        #expect(byPath["metrics.lisen"]?.contains("did you mean \"listen\"?") == true)
        #expect(byPath["upstream[0].reconect"]?.contains("did you mean \"reconnect\"?") == true)
        #expect(byPath["upstream[0].tls.ca_fiel"]?.contains("did you mean \"ca_file\"?") == true)
        #expect(byPath["upstream[0].reconnect.inital"]?.contains("did you mean \"initial\"?") == true)
        #expect(byPath["sink[0].evnts"]?.contains("did you mean \"events\"?") == true)
        #expect(errs.count == 7)
    }

    @Test func unknownKeyWithoutCloseMatchHasNoHint() {
        S.expectError(S.upstream + "frobnicate = true\n", at: "upstream[0].frobnicate", "unknown key \"frobnicate\"")
        let errs = S.errors(S.upstream + "frobnicate = true\n")
        #expect(!(errs.first?.message.contains("did you mean") ?? true))
    }
}

@Suite("Config: [daemon] and [metrics]")
struct ConfigDaemonTests {
    @Test func allDaemonKeys() throws {
        let toml = """
            [daemon]
            pid_file = "/run/w.pid"
            state_dir = "/srv/w"
            log_level = "trace"
            log_target = "stderr"
            shutdown_timeout = "250ms"
            control_socket = "/run/w.sock"
            control_allow_gids = [0, 4294967294]
            [metrics]
            listen = "localhost:9464"
            """ + "\n" + S.upstream
        let c = try #require(S.load(toml)).configuration
        #expect(c.daemon.pidFile == "/run/w.pid")
        #expect(c.daemon.stateDir == "/srv/w")
        #expect(c.daemon.logLevel == .trace)
        #expect(c.daemon.logTarget == .stderr)
        #expect(c.daemon.shutdownTimeout == .milliseconds(250))
        #expect(c.daemon.controlSocket == "/run/w.sock")
        #expect(c.daemon.controlAllowGIDs == [0, 4_294_967_294])
        #expect(c.metrics.listen == "localhost:9464")
    }

    @Test(arguments: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
    func logLevels(level: String) throws {
        let c = try #require(S.load("[daemon]\nlog_level = \"\(level)\"\n" + S.upstream)).configuration
        #expect(c.daemon.logLevel.rawValue == level)
    }

    @Test func badDaemonValues() {
        S.expectError("[daemon]\nlog_level = \"warnin\"\n" + S.upstream, at: "daemon.log_level", "did you mean \"warning\"?")
        S.expectError("[daemon]\nlog_target = \"syslog\"\n" + S.upstream, at: "daemon.log_target", "\"auto\", \"journal\", \"stderr\"")
        S.expectError("[daemon]\nstate_dir = \"var/lib\"\n" + S.upstream, at: "daemon.state_dir", "absolute path")
        S.expectError("[daemon]\npid_file = 5\n" + S.upstream, at: "daemon.pid_file", "expected an absolute path string, found integer 5")
        S.expectError("[daemon]\nshutdown_timeout = \"0s\"\n" + S.upstream, at: "daemon.shutdown_timeout", "greater than 0")
        S.expectError("[daemon]\ncontrol_allow_gids = [-1]\n" + S.upstream, at: "daemon.control_allow_gids[0]", "found -1")
        S.expectError("[daemon]\ncontrol_allow_gids = 5\n" + S.upstream, at: "daemon.control_allow_gids", "expected an array of integers")
        S.expectError("daemon = 5\n" + S.upstream, at: "daemon", "expected a table, found integer 5")
    }

    @Test(arguments: ["0.0.0.0:9464", "192.168.1.5:9464", ":9464", "[::]:9464", "example.com:80"])
    func metricsMustBeLoopback(listen: String) {
        S.expectError(
            "[metrics]\nlisten = \"\(listen)\"\n" + S.upstream, at: "metrics.listen",
            "only a loopback address", "or an absolute Unix socket path is allowed"
        )
    }

    @Test func metricsSocketPath() throws {
        let c = try #require(S.load("[metrics]\nlisten = \"/run/wsrelay/metrics.sock\"\n" + S.upstream)).configuration
        #expect(c.metrics.listen == "/run/wsrelay/metrics.sock")
    }
}

@Suite("Config: [[upstream]]")
struct ConfigUpstreamTests {
    @Test func requiresAnUpstream() {
        S.expectError("", at: "upstream", "at least one [[upstream]] section is required")
        S.expectError("upstream = []\n", at: "upstream", "at least one [[upstream]]")
        S.expectError("[upstream]\nname = \"x\"\n", at: "upstream", "expected an array of tables ([[upstream]] sections), found a table")
    }

    @Test func nameRules() {
        S.expectError("[[upstream]]\nurl = \"ws://h\"\n", at: "upstream[0].name", "required key is missing")
        S.expectError("[[upstream]]\nname = \"a b\"\nurl = \"ws://h\"\n", at: "upstream[0].name", "invalid name \"a b\"")
        S.expectError("[[upstream]]\nname = \"\"\nurl = \"ws://h\"\n", at: "upstream[0].name", "invalid name")
        let dup = S.upstream + S.upstream.replacingOccurrences(of: "wss://", with: "ws://") + S.upstream
        let errs = S.errors(dup)
        #expect(errs.map(\.keyPath) == ["upstream[1].name", "upstream[2].name"])
        #expect(errs[0].message == "duplicate upstream name \"feed\": used by upstream[0] and upstream[1]")
        #expect(errs[1].message.contains("upstream[0] and upstream[2]"))
    }

    @Test func urlRules() {
        S.expectError("[[upstream]]\nname = \"a\"\n", at: "upstream[0].url", "required key is missing", "ws://")
        S.expectError("[[upstream]]\nname = \"a\"\nurl = \"http://h\"\n", at: "upstream[0].url", "found scheme \"http\"")
        S.expectError("[[upstream]]\nname = \"a\"\nurl = \"ws://h#x\"\n", at: "upstream[0].url", "fragment")
        S.expectError("[[upstream]]\nname = \"a\"\nurl = \"ws://h:99999\"\n", at: "upstream[0].url", "1 to 65535")
        S.expectError("[[upstream]]\nname = \"a\"\nurl = 42\n", at: "upstream[0].url", "expected a ws:// or wss:// URL string, found integer 42")
    }

    @Test func everyUpstreamKey() throws {
        let toml = """
            [[upstream]]
            name = "feed"
            url = "wss://h.example:444/p?q=1"
            subprotocols = ["a", "b.c"]
            headers = { "X-B" = "2", "X-A" = "1", "User-Agent" = "w" }
            origin = "https://o.example"
            ping_interval = "0s"
            pong_timeout = "1s"
            app_ping = "ping"
            idle_timeout = "1h"
            connect_timeout = "2s"
            handshake_timeout = "3s"
            max_message_size = 1024
            subscribe = ["t1", { text = "t2" }, { binary = "AQID" }, { text = "" }]
            refresh_on_close_codes = []
            refresh_on_status = [401, 599]
            fatal_close_codes = [4001, 1000, 4999]
            reconnect_before_expiry = true
            proxy = ""
            [upstream.reconnect]
            initial = "2s"
            max = "2s"
            multiplier = 1
            reset_after = "0s"
            [upstream.tls]
            ca_file = "/ca"
            client_cert = "/c"
            client_key = "/k"
            server_name = "sni.example"
            """
        let loaded = try #require(S.load(toml))
        let u = loaded.configuration.upstreams[0]
        #expect(u.url == WebSocketURL(secure: true, host: "h.example", port: 444, target: "/p?q=1"))
        #expect(u.subprotocols == ["a", "b.c"])
        #expect(u.headers.map(\.name) == ["X-B", "X-A", "User-Agent"])  // file order
        #expect(u.headers.map(\.value) == ["2", "1", "w"])
        #expect(u.origin == "https://o.example")
        #expect(u.pingInterval == .zero)
        #expect(u.pongTimeout == .seconds(1))
        #expect(u.appPing == "ping")
        #expect(u.idleTimeout == .seconds(3600))
        #expect(u.connectTimeout == .seconds(2))
        #expect(u.handshakeTimeout == .seconds(3))
        #expect(u.maxMessageSize == 1024)
        #expect(u.subscribe == [.text("t1"), .text("t2"), .binary([1, 2, 3]), .text("")])
        #expect(u.refreshOnCloseCodes == [])
        #expect(u.refreshOnStatus == [401, 599])
        #expect(u.fatalCloseCodes == [4001, 1000, 4999])
        #expect(u.reconnectBeforeExpiry)
        #expect(u.proxy == "")
        #expect(u.reconnect.initial == .seconds(2))
        #expect(u.reconnect.max == .seconds(2))
        #expect(u.reconnect.multiplier == 1.0)
        #expect(u.reconnect.resetAfter == .zero)
        #expect(u.tls.caFile == "/ca")
        #expect(u.tls.clientCert == "/c")
        #expect(u.tls.clientKey == "/k")
        #expect(u.tls.serverName == "sni.example")
        #expect(!u.tls.insecureSkipVerify)
        // ping_interval = "0s" is allowed, with a warning.
        #expect(loaded.warnings.map(\.keyPath) == ["upstream[0].ping_interval"])
        #expect(loaded.warnings[0].message.contains("pings are disabled"))
    }

    @Test func headerOrderPerUpstreamInSectionForm() throws {
        let toml = """
            [[upstream]]
            name = "a"
            url = "ws://a"
            [upstream.headers]
            Zed = "1"
            Alpha = "2"
            [[upstream]]
            name = "b"
            url = "ws://b"
            headers = { Alpha = "x", Zed = "y" }
            """
        let c = try #require(S.load(toml)).configuration
        #expect(c.upstreams[0].headers.map(\.name) == ["Zed", "Alpha"])
        #expect(c.upstreams[1].headers.map(\.name) == ["Alpha", "Zed"])
    }

    @Test(arguments: ["Host", "upgrade", "Connection", "Sec-WebSocket-Key", "sec-websocket-extensions"])
    func reservedHeaders(name: String) {
        S.expectError(
            S.upstream + "headers = { \"\(name)\" = \"x\" }\n", at: ConfigKeyPath.child("upstream[0].headers", name),
            "is reserved"
        )
    }

    @Test func headerValidation() {
        S.expectError(S.upstream + "headers = { \"Bad Name\" = \"x\" }\n", at: "upstream[0].headers.\"Bad Name\"", "invalid header name")
        S.expectError(S.upstream + "headers = { X-A = 1 }\n", at: "upstream[0].headers.X-A", "expected a string header value, found integer 1")
        S.expectError(S.upstream + "headers = { X-A = \"a\\r\\nX-B: b\" }\n", at: "upstream[0].headers.X-A", "CR, LF")
        S.expectError(S.upstream + "headers = { X-A = \"1\", x-a = \"2\" }\n", at: "upstream[0].headers.x-a", "case-insensitive")
        S.expectError(S.upstream + "headers = \"X-A: 1\"\n", at: "upstream[0].headers", "expected a table")
    }

    @Test func subprotocolValidation() {
        S.expectError(S.upstream + "subprotocols = [\"ok\", \"not ok\"]\n", at: "upstream[0].subprotocols[1]", "HTTP token")
        S.expectError(S.upstream + "subprotocols = [\"\"]\n", at: "upstream[0].subprotocols[0]", "HTTP token")
        S.expectError(S.upstream + "subprotocols = [1]\n", at: "upstream[0].subprotocols[0]", "expected a subprotocol name, found integer 1")
        S.expectError(S.upstream + "subprotocols = \"v1\"\n", at: "upstream[0].subprotocols", "expected an array of strings, found string \"v1\"")
    }

    @Test func durationsAndSizes() {
        S.expectError(S.upstream + "ping_interval = 30\n", at: "upstream[0].ping_interval", "expected a duration string such as \"30s\", \"250ms\" or \"2m\", found integer 30")
        S.expectError(S.upstream + "pong_timeout = \"0s\"\n", at: "upstream[0].pong_timeout", "must be greater than 0, found \"0s\"")
        S.expectError(S.upstream + "idle_timeout = \"0s\"\n", at: "upstream[0].idle_timeout", "greater than 0")
        S.expectError(S.upstream + "connect_timeout = \"-1s\"\n", at: "upstream[0].connect_timeout", "invalid duration \"-1s\"")
        S.expectError(S.upstream + "handshake_timeout = 1.5\n", at: "upstream[0].handshake_timeout", "found floating-point number 1.5")
        S.expectError(S.upstream + "max_message_size = \"512B\"\n", at: "upstream[0].max_message_size", "between 1KiB and 1GiB, found \"512B\"")
        S.expectError(S.upstream + "max_message_size = \"2GiB\"\n", at: "upstream[0].max_message_size", "between 1KiB and 1GiB")
        S.expectError(S.upstream + "max_message_size = 100\n", at: "upstream[0].max_message_size", "found 100")
        S.expectError(S.upstream + "max_message_size = true\n", at: "upstream[0].max_message_size", "expected a size such as", "found boolean true")
    }

    @Test func subscribeValidation() {
        S.expectError(S.upstream + "subscribe = [\"a\", { binary = \"%%%\" }]\n", at: "upstream[0].subscribe[1].binary", "invalid base64")
        S.expectError(S.upstream + "subscribe = [{ text = \"a\", binary = \"AA==\" }]\n", at: "upstream[0].subscribe[0]", "either text or binary")
        let neither = S.errors(S.upstream + "subscribe = [{ txt = \"a\" }]\n")
        #expect(neither.map(\.keyPath) == ["upstream[0].subscribe[0]", "upstream[0].subscribe[0].txt"])
        #expect(neither.last?.message.contains("did you mean \"text\"?") == true)
        S.expectError(S.upstream + "subscribe = [{ text = \"a\", extra = 1 }]\n", at: "upstream[0].subscribe[0].extra", "unknown key")
        S.expectError(S.upstream + "subscribe = [42]\n", at: "upstream[0].subscribe[0]", "found integer 42")
        S.expectError(S.upstream + "subscribe = \"hello\"\n", at: "upstream[0].subscribe", "expected an array of messages")
    }

    @Test func closeCodesAndStatuses() {
        S.expectError(S.upstream + "refresh_on_close_codes = [999]\n", at: "upstream[0].refresh_on_close_codes[0]", "close code from 1000 to 4999, found 999")
        S.expectError(S.upstream + "fatal_close_codes = [5000]\n", at: "upstream[0].fatal_close_codes[0]", "1000 to 4999")
        S.expectError(S.upstream + "refresh_on_status = [200]\n", at: "upstream[0].refresh_on_status[0]", "HTTP status from 400 to 599")
        S.expectError(S.upstream + "refresh_on_status = [\"401\"]\n", at: "upstream[0].refresh_on_status[0]", "found string \"401\"")
        // Overlap with the explicit list and with the default list.
        S.expectError(
            S.upstream + "refresh_on_close_codes = [4002]\nfatal_close_codes = [4002]\n", at: "upstream[0].fatal_close_codes",
            "close code 4002 is in both refresh_on_close_codes and fatal_close_codes"
        )
        S.expectError(S.upstream + "fatal_close_codes = [4001]\n", at: "upstream[0].fatal_close_codes", "4001", "(its default)")
        // No overlap once the refresh list no longer holds the code.
        #expect(S.load(S.upstream + "refresh_on_close_codes = [4003]\nfatal_close_codes = [4001]\n") != nil)
    }

    @Test func reconnectRules() {
        S.expectError(S.upstream + "[upstream.reconnect]\ninitial = \"10s\"\nmax = \"5s\"\n", at: "upstream[0].reconnect.max", "at least initial (10s), found 5s")
        S.expectError(S.upstream + "[upstream.reconnect]\ninitial = \"2m\"\n", at: "upstream[0].reconnect.max", "at least initial (2m), found 1m")
        S.expectError(S.upstream + "[upstream.reconnect]\nmultiplier = 0.5\n", at: "upstream[0].reconnect.multiplier", "at least 1.0")
        S.expectError(S.upstream + "[upstream.reconnect]\nmultiplier = \"2\"\n", at: "upstream[0].reconnect.multiplier", "expected a number, found string \"2\"")
        S.expectError(S.upstream + "[upstream.reconnect]\ninitial = \"0s\"\n", at: "upstream[0].reconnect.initial", "greater than 0")
    }

    @Test func proxyRules() throws {
        let c = try #require(S.load(S.upstream + "proxy = \"http://proxy:3128\"\n")).configuration
        #expect(c.upstreams[0].proxy == "http://proxy:3128")
        S.expectError(S.upstream + "proxy = \"socks5://proxy:1080\"\n", at: "upstream[0].proxy", "invalid proxy URL")
        S.expectError(S.upstream + "proxy = false\n", at: "upstream[0].proxy", "found boolean false")
    }

    @Test func tlsRules() {
        S.expectError(S.upstream + "[upstream.tls]\nclient_key = \"/k\"\n", at: "upstream[0].tls.client_cert", "client_key is set but client_cert is not")
        S.expectError(S.upstream + "[upstream.tls]\nca_file = \"ca.pem\"\n", at: "upstream[0].tls.ca_file", "absolute path")
        S.expectError(S.upstream + "[upstream.tls]\ninsecure_skip_verify = \"yes\"\n", at: "upstream[0].tls.insecure_skip_verify", "expected a boolean (true or false), found string \"yes\"")
        let insecure = S.warnings(S.upstream + "[upstream.tls]\ninsecure_skip_verify = true\n")
        #expect(insecure.map(\.keyPath) == ["upstream[0].tls.insecure_skip_verify"])
        let plain = S.warnings("[[upstream]]\nname = \"a\"\nurl = \"ws://h\"\n[upstream.tls]\nserver_name = \"x\"\n")
        #expect(plain.map(\.keyPath) == ["upstream[0].tls"])
        #expect(plain.first?.message.contains("ws://") == true)
    }
}

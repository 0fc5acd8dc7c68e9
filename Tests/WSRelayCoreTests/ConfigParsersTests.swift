import Testing

@testable import WSRelayCore

@Suite("Config: duration parser")
struct ConfigDurationParserTests {
    @Test(arguments: [
        ("30s", Duration.seconds(30)),
        ("250ms", .milliseconds(250)),
        ("2m", .seconds(120)),
        ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)),
        ("1.5s", .milliseconds(1500)),
        ("0s", .zero),
        ("0.5m", .seconds(30)),
        ("1d", .seconds(86400)),
        ("1h2m3s4ms5us6ns", .seconds(3723) + .nanoseconds(4_005_006)),
        ("10us", .microseconds(10)),
        ("10µs", .microseconds(10)),
        ("7ns", .nanoseconds(7)),
        ("007s", .seconds(7)),
        ("1.250s", .milliseconds(1250)),
    ])
    func parsesValid(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test(arguments: [
        "", "30", "s", "-1s", "1.5", "1 s", " 1s", "1s ", "30sec", "1x", "1s1m", "1s1s", ".5s", "1.s", "0.1ns",
        "1e3s", "99999999999999999999s", "300000d", "+1s", "1m 30s",
    ])
    func rejectsInvalid(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test(arguments: [
        (Duration.seconds(30), "30s"),
        (.milliseconds(250), "250ms"),
        (.seconds(120), "2m"),
        (.seconds(3600), "1h"),
        (.seconds(90), "90s"),
        (.milliseconds(1500), "1.5s"),
        (.zero, "0s"),
        (.seconds(300), "5m"),
        (.seconds(5400), "90m"),
        (.seconds(86400), "1d"),
        (.seconds(3661), "3661s"),
        (.seconds(3723) + .milliseconds(4), "3723004ms"),
        (.nanoseconds(1), "1ns"),
        (.microseconds(1500), "1.5ms"),
    ])
    func formatsShortest(duration: Duration, expected: String) {
        #expect(DurationParser.format(duration) == expected)
    }

    @Test func formatRoundTrips() {
        let samples: [Duration] = [
            .seconds(1), .seconds(59), .seconds(61), .milliseconds(1001), .nanoseconds(123_456_789),
            .seconds(7 * 86400 + 1), .microseconds(999), .seconds(100_000), .milliseconds(60_001),
            // Found by fuzzing (Fuzz/regressions/duration-size): 19 digits of nanoseconds.
            .nanoseconds(3_333_337_474_300_000_007), .nanoseconds(Int64.max),
        ]
        for d in samples {
            let text = DurationParser.format(d)
            #expect(DurationParser.parse(text) == d, "\(text)")
        }
    }
}

@Suite("Config: byte size parser")
struct ConfigByteSizeParserTests {
    @Test(arguments: [
        ("16MiB", 16 << 20), ("64KiB", 64 << 10), ("1GiB", 1 << 30), ("512B", 512), ("1MB", 1_000_000),
        ("1kB", 1000), ("1KB", 1000), ("2TiB", 2 << 40), ("3GB", 3_000_000_000), ("4096", 4096), ("16 MiB", 16 << 20),
        ("1.5KiB", 1536), ("0B", 0),
    ])
    func parsesValid(text: String, expected: Int) {
        #expect(ByteSizeParser.parse(text) == expected)
    }

    @Test(arguments: [
        "", "MiB", "16mib", "16M", "16 megabytes", "-1B", "1.5", "0.1B", "1.B", "16  MiB", "16MiB ", "99999999999TiB", "9223372036854775808B",
        "1e3B", "16Mi",
    ])
    func rejectsInvalid(text: String) {
        #expect(ByteSizeParser.parse(text) == nil)
    }

    @Test(arguments: [
        (16 << 20, "16MiB"), (64 << 10, "64KiB"), (1 << 30, "1GiB"), (512, "512B"), (1_000_000, "1MB"), (1000, "1kB"),
        (1536, "1536B"), (0, "0B"), (3 << 40, "3TiB"), (1_048_577, "1048577B"),
        // Found by fuzzing (Fuzz/regressions/duration-size, from "1555555555552.005556MB"): 19 digits of bytes.
        (1_555_555_555_552_005_556, "1555555555552005556B"), (Int.max, "9223372036854775807B"),
    ])
    func formatsShortest(n: Int, expected: String) {
        #expect(ByteSizeParser.format(n) == expected)
        #expect(ByteSizeParser.parse(expected) == n)
    }
}

@Suite("Config: WebSocket URL parser")
struct ConfigWebSocketURLTests {
    @Test(arguments: [
        ("ws://example.com", WebSocketURL(secure: false, host: "example.com", port: 80, target: "/")),
        ("wss://example.com", WebSocketURL(secure: true, host: "example.com", port: 443, target: "/")),
        ("WSS://Example.COM:8443/a/b?x=1&y=2", WebSocketURL(secure: true, host: "example.com", port: 8443, target: "/a/b?x=1&y=2")),
        ("ws://[::1]:9000/feed", WebSocketURL(secure: false, host: "::1", port: 9000, target: "/feed")),
        ("wss://[2001:db8::1]", WebSocketURL(secure: true, host: "2001:db8::1", port: 443, target: "/")),
        ("ws://127.0.0.1:1?q", WebSocketURL(secure: false, host: "127.0.0.1", port: 1, target: "/?q")),
        ("ws://h:65535/", WebSocketURL(secure: false, host: "h", port: 65535, target: "/")),
    ])
    func parsesValid(text: String, expected: WebSocketURL) throws {
        let url = try WebSocketURLParser.parse(text).get()
        #expect(url == expected)
        // The description parses back to the same URL.
        #expect(try WebSocketURLParser.parse(url.description).get() == url)
    }

    @Test(arguments: [
        ("http://example.com", "found scheme \"http\""),
        ("https://example.com", "found scheme \"https\""),
        ("example.com/feed", "starting with ws:// or wss://"),
        ("wss:///feed", "no host"),
        ("wss://:443/feed", "no host"),
        ("wss://example.com:0", "1 to 65535"),
        ("wss://example.com:65536", "1 to 65535"),
        ("wss://example.com:http", "1 to 65535"),
        ("wss://example.com:", "port is empty"),
        ("wss://example.com/feed#frag", "fragment"),
        ("wss://user:pw@example.com/", "user info"),
        ("wss://::1/feed", "brackets"),
        ("wss://[::1/feed", "closing"),
        ("wss://[zz::1]/", "invalid IPv6"),
        ("wss://exa mple.com/", "spaces"),
        ("wss://bücher.de/", "punycode"),
        ("", "empty"),
    ])
    func rejectsInvalid(text: String, messagePart: String) {
        switch WebSocketURLParser.parse(text) {
        case .success(let url):
            Issue.record("accepted \(text) as \(url)")
        case .failure(let error):
            #expect(error.message.contains(messagePart), "\(error.message)")
        }
    }

    @Test func userInfoIsNotEchoed() {
        guard case .failure(let error) = WebSocketURLParser.parse("wss://alice:s3cret@example.com/") else {
            Issue.record("accepted")
            return
        }
        #expect(!error.message.contains("s3cret"))
        #expect(!error.message.contains("alice"))
    }

    @Test func httpAndProxyURLs() {
        #expect(GenericURL.validateHTTP("https://idp.example.com/token") == nil)
        #expect(GenericURL.validateHTTP("http://127.0.0.1:8080/t?x=1") == nil)
        #expect(GenericURL.validateHTTP("ftp://x/") != nil)
        #expect(GenericURL.validateHTTP("https://") != nil)
        #expect(GenericURL.validateProxy("http://proxy:3128") == nil)
        #expect(GenericURL.validateProxy("http://proxy:3128/") == nil)
        #expect(GenericURL.validateProxy("https://proxy:3128") != nil)
        #expect(GenericURL.validateProxy("http://proxy:3128/path") != nil)
        #expect(GenericURL.validateProxy("http://u:p@proxy:3128") != nil)
    }
}

@Suite("Config: small helpers")
struct ConfigHelperTests {
    @Test func editDistance() {
        #expect(DidYouMean.editDistance("ping_intervl", "ping_interval") == 1)
        #expect(DidYouMean.editDistance("", "abc") == 3)
        #expect(DidYouMean.editDistance("kitten", "sitting") == 3)
        #expect(DidYouMean.suggestion(for: "ping_intervl", among: ConfigSchema.upstream) == "ping_interval")
        #expect(DidYouMean.suggestion(for: "URL", among: ConfigSchema.upstream) == "url")
        #expect(DidYouMean.suggestion(for: "completely_different", among: ConfigSchema.upstream) == nil)
    }

    @Test func metricsListen() {
        for ok in ["127.0.0.1:9464", "127.1.2.3:1", "[::1]:9464", "localhost:9464", "/run/wsrelay/metrics.sock"] {
            #expect(ConfigValidators.metricsListenProblem(ok) == nil, "\(ok)")
        }
        for bad in ["0.0.0.0:9464", "10.0.0.1:9464", "[::]:9464", ":9464", "example.com:9464", "127.0.0.1", "[::1]",
            "128.0.0.1:9464", "127.0.0.256:80", "metrics.sock"]
        {
            #expect(ConfigValidators.metricsListenProblem(bad) != nil, "\(bad)")
        }
        #expect(ConfigValidators.metricsListenProblem("127.0.0.1:0")?.contains("port") == true)
    }

    @Test func names() {
        #expect(ConfigValidators.nameProblem("feed-1.v2_x") == nil)
        #expect(ConfigValidators.nameProblem("") != nil)
        #expect(ConfigValidators.nameProblem("has space") != nil)
        #expect(ConfigValidators.nameProblem(String(repeating: "a", count: 64)) == nil)
        #expect(ConfigValidators.nameProblem(String(repeating: "a", count: 65)) != nil)
    }

    @Test func tomlQuoting() {
        #expect(TOMLText.quoted("a\"b\\c\nd\u{01}") == "\"a\\\"b\\\\c\\nd\\u0001\"")
        #expect(TOMLText.key("X-Api-Key") == "X-Api-Key")
        #expect(TOMLText.key("a.b") == "\"a.b\"")
    }
}

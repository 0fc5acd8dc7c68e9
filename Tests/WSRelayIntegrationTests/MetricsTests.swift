import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// Part 6, item 3 through the real binary: the simulator sends a known number of messages of a known size,
/// then closes with a code; the scrape must parse strictly as Prometheus text and count exactly that.
@Suite("metrics endpoint", .mayBlock, .serialized, .timeLimit(.minutes(1)))
struct MetricsTests {
    static func config(_ dir: TemporaryDirectory, listen: String, upstreams: String) -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "debug"

        [metrics]
        listen = "\(listen)"

        \(upstreams)

        [[sink]]
        type = "file"
        path = "\(dir.file("out.jsonl"))"
        fsync = "never"
        """
    }

    static func upstream(_ name: String, _ url: String, _ extra: String = "") -> String {
        """
        [[upstream]]
        name = "\(name)"
        url = "\(url)"
        \(extra)
        [upstream.reconnect]
        initial = "200ms"
        max = "2s"

        """
    }

    static func lines(_ dir: TemporaryDirectory) -> Int {
        (dir.read("out.jsonl") ?? "").split(separator: "\n").count
    }

    static func fileSize(_ path: String) -> Double {
        Double((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1)
    }

    /// Scrapes and parses strictly; records the failure and returns nil when either fails.
    static func scrape(_ get: () throws -> MetricsScrape.Response) -> PrometheusText? {
        do {
            let response = try get()
            #expect(response.status == 200)
            #expect(response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            return try PrometheusText.parse(response.body)
        } catch {
            Issue.record("scrape failed: \(error)")
            return nil
        }
    }

    @Test("messages, bytes, connects, the close code, ping RTT and sink bytes match what was sent")
    func countsMatchTheTraffic() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory("metrics")
        let port = MetricsScrape.freePort()
        let count = 250, size = 300
        // 4004 is configured fatal: the upstream stops after one connection, so exactly `count` arrive.
        let daemon = try RunningDaemon(config: Self.config(dir, listen: "127.0.0.1:\(port)", upstreams:
            Self.upstream("feed", "\(server.url)/feed?count=\(count)&size=\(size)&close=4004", "fatal_close_codes = [4004]") +
            Self.upstream("live", "\(server.url)/live", "ping_interval = \"200ms\"")), in: dir)
        #expect(eventually { Self.lines(dir) == count }, "file has \(Self.lines(dir)) lines")

        var metrics: PrometheusText?
        let settled = eventually {
            metrics = Self.scrape { try MetricsScrape.get(port: port) }
            guard let m = metrics else { return false }
            return m.value("wsrelay_upstream_messages_received_total", ["upstream": "feed"]) == Double(count)
                && m.value("wsrelay_upstream_disconnects_total", ["upstream": "feed", "cause": "4004"]) == 1
                && (m.value("wsrelay_upstream_ping_rtt_seconds_count", ["upstream": "live"]) ?? 0) >= 2
                && m.value("wsrelay_sink_bytes_written_total", ["sink": dir.file("out.jsonl"), "type": "file"])
                    == Self.fileSize(dir.file("out.jsonl"))
        }
        #expect(settled, "last scrape: \(metrics?.samples.map(\.description).sorted() ?? [])")
        let m = try #require(metrics)
        #expect(m.value("wsrelay_upstream_messages_received_total", ["upstream": "feed"]) == Double(count))
        #expect(m.value("wsrelay_upstream_bytes_received_total", ["upstream": "feed"]) == Double(count * size))
        #expect(m.value("wsrelay_upstream_messages_received_total", ["upstream": "live"]) == 0)
        #expect((m.value("wsrelay_upstream_connects_total", ["upstream": "feed"]) ?? 0) >= 1)
        #expect((m.value("wsrelay_upstream_connects_total", ["upstream": "live"]) ?? 0) >= 1)
        #expect(m.value("wsrelay_upstream_disconnects_total", ["upstream": "feed", "cause": "4004"]) == 1)
        #expect(m.value("wsrelay_upstream_up", ["upstream": "feed"]) == 0)
        #expect(m.value("wsrelay_upstream_up", ["upstream": "live"]) == 1)
        #expect(m.families["wsrelay_upstream_ping_rtt_seconds"]?.type == "histogram")
        #expect((m.value("wsrelay_upstream_ping_rtt_seconds_sum", ["upstream": "live"]) ?? 0) > 0)
        #expect(m.value("wsrelay_sink_writes_total", ["sink": dir.file("out.jsonl"), "type": "file"]).map { $0 >= 1 } == true)
        #expect(m.value("wsrelay_sink_dropped_messages_total", ["sink": dir.file("out.jsonl"), "type": "file"]) == 0)
        #expect(m.samples("wsrelay_build_info").count == 1)
        for family in m.families.values {
            #expect(family.name.hasPrefix("wsrelay_"))
            #expect(family.help?.isEmpty == false, "\(family.name) has no HELP")
        }

        let other = try MetricsScrape.get(port: port, path: "/")
        #expect(other.status == 404)
        let post = try MetricsScrape.get(port: port, method: "POST")
        #expect(post.status == 405)
        #expect(daemon.stop() == 0)
        #expect((try? MetricsScrape.get(port: port)) == nil, "the endpoint must be closed after shutdown")
    }

    @Test("a Unix socket path: a stale socket file is replaced, mode 0660, scraped once, removed at shutdown")
    func unixSocket() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory("metrics")
        let path = dir.file("metrics.sock")
        try Self.leaveStaleSocket(at: path)
        let daemon = try RunningDaemon(config: Self.config(dir, listen: path, upstreams:
            Self.upstream("feed", "\(server.url)/feed?count=20&size=100&close=4004", "fatal_close_codes = [4004]")), in: dir)
        #expect(eventually { Self.lines(dir) == 20 })
        var st = stat()
        #expect(stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK)
        #expect(st.st_mode & 0o777 == 0o660, "mode \(String(st.st_mode & 0o777, radix: 8))")
        var metrics: PrometheusText?
        #expect(eventually {
            metrics = Self.scrape { try MetricsScrape.get(unixPath: path) }
            return metrics?.value("wsrelay_upstream_messages_received_total", ["upstream": "feed"]) == 20
        })
        #expect(metrics?.value("wsrelay_upstream_bytes_received_total", ["upstream": "feed"]) == 2000)
        #expect(daemon.stop() == 0)
        #expect(access(path, F_OK) != 0, "the socket file must be removed at shutdown")
    }

    @Test("a metrics port already in use is a startup error naming the address")
    func portInUse() throws {
        let dir = try TemporaryDirectory("metrics")
        let blocker = try ListeningTCPSocket()
        let listen = "127.0.0.1:\(blocker.port)"
        let config = try dir.write("wsrelay.toml", Self.config(dir, listen: listen, upstreams:
            Self.upstream("feed", "ws://127.0.0.1:9/feed")))
        let result = try WSRelayProcess.run(["run", "--config", config], directory: dir)
        #expect(result.status != nil && result.status != 0)
        #expect(result.stderr.contains("metrics \(listen)") && result.stderr.contains("EADDRINUSE"), "\(result.stderr)")
    }

    /// Binds a Unix socket at `path` and closes it without removing the file, as a crashed daemon would.
    static func leaveStaleSocket(at path: String) throws {
        close(try RawUnixSocket.bind(path))
    }
}

/// A listening TCP socket on 127.0.0.1 that occupies a port for as long as it lives.
final class ListeningTCPSocket {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 1) == 0 ? getsockname(fd, pointer, &length) : -1
            }
        }
        guard rc == 0 else { throw MetricsScrape.Failure(description: "listen: errno \(errno)") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}

/// The parser the endpoint test relies on must itself be strict, and must accept what the real emitter
/// writes (every family wsrelay has, including a histogram), in-process.
@Suite("Prometheus text parser", .mayBlock)
struct MetricsTextParserTests {
    @Test func acceptsTheRelayExposition() throws {
        let metrics = RelayMetrics(enabled: true)
        _ = metrics.upstream(named: "a \"quoted\" \\ name")
        _ = metrics.credential(named: "api")
        var status = SinkStatus(kind: .unix, name: "/run/x.sock", format: .envelope, upstreams: [])
        status.bytesWritten = 10
        status.slowDisconnects = 1
        var jetstream = SinkStatus(kind: .jetstream, name: "nats://127.0.0.1:4222/x.{upstream}", format: .envelope, upstreams: [])
        jetstream.jetstream = .init(connectedServer: nil, inFlight: 0, pending: 0, acknowledged: 0, duplicates: 0, retried: 0)
        let text = metrics.expositionText(sinks: [
            status, SinkStatus(kind: .file, name: "/var/log/a", format: .envelope, upstreams: []), jetstream,
        ])
        let parsed = try PrometheusText.parse(text)
        let declared = Set(RelayMetricFamily.allCases.map(\.name)).subtracting([RelayMetricFamily.upstreamDisconnects.name])
        #expect(Set(parsed.families.keys) == declared)
        for family in RelayMetricFamily.allCases where parsed.families[family.name] != nil {
            #expect(parsed.families[family.name]?.type == family.kind.rawValue)
        }
        #expect(parsed.value("wsrelay_upstream_connects_total", ["upstream": "a \"quoted\" \\ name"]) == 0)
        #expect(parsed.value("wsrelay_subscriber_slow_disconnects_total", ["sink": "/run/x.sock"]) == 1)
        #expect(parsed.value("wsrelay_upstream_ping_rtt_seconds_bucket", ["upstream": "a \"quoted\" \\ name", "le": "+Inf"]) == 0)
    }

    @Test(arguments: [
        ("undeclared family", "x_total 1\n"),
        ("no final line feed", "# TYPE x counter\nx 1"),
        ("negative counter", "# TYPE x counter\nx -1\n"),
        ("bad value", "# TYPE x gauge\nx one\n"),
        ("unterminated labels", "# TYPE x gauge\nx{a=\"1\" 1\n"),
        ("bad label escape", "# TYPE x gauge\nx{a=\"\\t\"} 1\n"),
        ("duplicate sample", "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n"),
        ("split family", "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1\n"),
        ("TYPE after samples", "# TYPE x gauge\nx 1\n# TYPE x gauge\n"),
        ("not cumulative", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"),
        ("+Inf != count", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n"),
        ("no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
        ("no _sum", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n"),
    ])
    func rejects(_ what: String, _ text: String) {
        #expect(throws: PrometheusText.ParseError.self, "\(what)") { try PrometheusText.parse(text) }
    }

    @Test func acceptsAWellFormedHistogramAndEscapes() throws {
        let text = """
            # HELP h Round trips, with a \\\\ backslash.
            # TYPE h histogram
            h_bucket{u="a\\"b",le="0.1"} 1
            h_bucket{u="a\\"b",le="1.0"} 3
            h_bucket{u="a\\"b",le="+Inf"} 4
            h_sum{u="a\\"b"} 2.5
            h_count{u="a\\"b"} 4
            # a comment
            # TYPE c counter
            c 7 1700000000000

            """
        let parsed = try PrometheusText.parse(text)
        #expect(parsed.families["h"]?.help == "Round trips, with a \\ backslash.")
        #expect(parsed.value("h_count", ["u": "a\"b"]) == 4)
        #expect(parsed.value("c") == 7)
    }
}

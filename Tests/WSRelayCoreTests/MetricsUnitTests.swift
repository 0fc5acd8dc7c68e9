import Foundation
import Glibc
import Logging
import NIOPosix
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// `RelayMetrics` and its handles, read back through the Prometheus exposition they produce.
@Suite struct RelayMetricsTests {
    static func lines(_ metrics: RelayMetrics, sinks: [SinkStatus] = []) -> Set<String> {
        Set(metrics.expositionText(sinks: sinks).split(separator: "\n").map(String.init))
    }

    static func state(_ phase: UpstreamState.Phase, connects: Int = 0, disconnects: [String: Int] = [:]) -> UpstreamState {
        UpstreamState(name: "a", phase: phase, since: .now, connects: connects, disconnects: disconnects)
    }

    @Test func disabledHandsOutNoOpsAndExportsNothing() {
        let metrics = RelayMetrics(MetricsSettings())
        #expect(!metrics.isEnabled)
        #expect(metrics.upstream(named: "a") === UpstreamMetrics.disabled)
        #expect(metrics.credential(named: "api") === CredentialMetrics.disabled)
        metrics.upstream(named: "a").traffic.record(messages: 3, bytes: 30)
        metrics.upstream(named: "a").observe(from: Self.state(.connecting), to: Self.state(.open, connects: 1))
        #expect(metrics.exposition(sinks: [SinkStatus(kind: .file, name: "/x", format: .envelope, upstreams: [])]).isEmpty)
        var settings = MetricsSettings()
        settings.listen = "127.0.0.1:9464"
        #expect(RelayMetrics(settings).isEnabled)
    }

    @Test func batchesAndStatusChangesCount() {
        let metrics = RelayMetrics(enabled: true)
        let upstream = metrics.upstream(named: "a")
        #expect(metrics.upstream(named: "a") === upstream, "one set of handles per name")
        upstream.traffic.record(messages: 3, bytes: 30)
        upstream.traffic.record(messages: 2, bytes: 25)
        let opened = Self.state(.open, connects: 1)
        upstream.observe(from: Self.state(.connecting), to: opened)
        #expect(Self.lines(metrics).contains(#"wsrelay_upstream_up{upstream="a"} 1.0"#))
        let closed = Self.state(.backingOff, connects: 1, disconnects: ["4001": 1])
        upstream.observe(from: opened, to: closed)
        upstream.observe(from: closed, to: Self.state(.backingOff, connects: 1, disconnects: ["4001": 1, "connect error": 2]))
        let lines = Self.lines(metrics)
        for expected in [
            #"wsrelay_upstream_messages_received_total{upstream="a"} 5"#,
            #"wsrelay_upstream_bytes_received_total{upstream="a"} 55"#,
            #"wsrelay_upstream_connects_total{upstream="a"} 1"#,
            #"wsrelay_upstream_disconnects_total{upstream="a",cause="4001"} 1"#,
            #"wsrelay_upstream_disconnects_total{upstream="a",cause="connect error"} 2"#,
            #"wsrelay_upstream_up{upstream="a"} 0.0"#,
        ] {
            #expect(lines.contains(expected), "missing \(expected) in \(lines.sorted())")
        }
    }

    @Test func aDriverContinuingCountersAddsOnlyWhatGrew() {
        // A reload's replacement driver starts from the old driver's counts (continueFrom); the first publish
        // after that must not count them again.
        let metrics = RelayMetrics(enabled: true)
        let upstream = metrics.upstream(named: "a")
        let continued = Self.state(.idle, connects: 5, disconnects: ["1000": 4, "removed": 1])
        upstream.observe(from: continued, to: Self.state(.open, connects: 6, disconnects: ["1000": 4, "removed": 1]))
        let lines = Self.lines(metrics)
        #expect(lines.contains(#"wsrelay_upstream_connects_total{upstream="a"} 1"#))
        #expect(!lines.contains { $0.hasPrefix("wsrelay_upstream_disconnects_total") })
    }

    @Test func twoDriversOfOneUpstreamAddUpInUp() {
        let metrics = RelayMetrics(enabled: true)
        let upstream = metrics.upstream(named: "a")
        upstream.observe(from: Self.state(.connecting), to: Self.state(.open, connects: 1))
        upstream.observe(from: Self.state(.connecting), to: Self.state(.open, connects: 1))
        upstream.observe(from: Self.state(.open), to: Self.state(.finished))
        #expect(Self.lines(metrics).contains(#"wsrelay_upstream_up{upstream="a"} 1.0"#))
    }

    @Test func instancesShareNothingAndRemovedUpstreamsDisappear() {
        let one = RelayMetrics(enabled: true)
        let two = RelayMetrics(enabled: true)
        one.upstream(named: "a").traffic.record(messages: 1, bytes: 1)
        #expect(Self.lines(one).contains(#"wsrelay_upstream_messages_received_total{upstream="a"} 1"#))
        #expect(Self.lines(two).allSatisfy { !$0.contains(#"upstream="a""#) })
        _ = one.upstream(named: "b")
        one.removeUpstream(named: "a")
        let lines = Self.lines(one)
        #expect(lines.allSatisfy { !$0.contains(#"upstream="a""#) }, "\(lines.sorted())")
        #expect(lines.contains(#"wsrelay_upstream_messages_received_total{upstream="b"} 0"#))
        // Asking again after a removal starts a new series.
        one.upstream(named: "a").traffic.record(messages: 2, bytes: 2)
        #expect(Self.lines(one).contains(#"wsrelay_upstream_messages_received_total{upstream="a"} 2"#))
    }

    @Test func pingRTTIsAHistogramInSeconds() {
        let metrics = RelayMetrics(enabled: true)
        let upstream = metrics.upstream(named: "a")
        for rtt: Duration in [.microseconds(80), .microseconds(500), .milliseconds(3), .seconds(7)] {
            upstream.recordPingRTT(rtt)
        }
        let lines = Self.lines(metrics)
        for expected in [
            "# TYPE wsrelay_upstream_ping_rtt_seconds histogram",
            #"wsrelay_upstream_ping_rtt_seconds_bucket{upstream="a",le="0.0001"} 1"#,
            #"wsrelay_upstream_ping_rtt_seconds_bucket{upstream="a",le="0.0005"} 2"#,
            #"wsrelay_upstream_ping_rtt_seconds_bucket{upstream="a",le="0.005"} 3"#,
            #"wsrelay_upstream_ping_rtt_seconds_bucket{upstream="a",le="5.0"} 3"#,
            #"wsrelay_upstream_ping_rtt_seconds_bucket{upstream="a",le="+Inf"} 4"#,
            #"wsrelay_upstream_ping_rtt_seconds_count{upstream="a"} 4"#,
            #"wsrelay_upstream_ping_rtt_seconds_sum{upstream="a"} 7.00358"#,
        ] {
            #expect(lines.contains(expected), "missing \(expected) in \(lines.sorted())")
        }
    }

    @Test func credentialRefreshesCountByOutcome() async throws {
        let metrics = RelayMetrics(enabled: true)
        let provider = ScriptedTokenProvider()
        let credential = Credential(settings: credentialSettings("api"), provider: provider,
                                    logger: LogCapture().logger(), metrics: metrics.credential(named: "api"))
        #expect(Self.lines(metrics).contains(#"wsrelay_credential_refreshes_total{credential="api",outcome="rejected"} 0"#))
        _ = try await credential.token()
        provider.enqueue(.failure(CredentialError(.endpointUnreachable, credential: "api", "connection refused")))
        await #expect(throws: CredentialError.self) { try await credential.forceRefresh() }
        provider.enqueue(.failure(CredentialError(.grantRejected, credential: "api", "invalid_grant", oauthError: "invalid_grant")))
        await #expect(throws: CredentialError.self) { try await credential.forceRefresh() }
        _ = try await credential.forceRefresh()
        let lines = Self.lines(metrics)
        for (outcome, count) in [("success", 2), ("failure", 1), ("rejected", 1)] {
            let expected = #"wsrelay_credential_refreshes_total{credential="api",outcome="\#(outcome)"} \#(count)"#
            #expect(lines.contains(expected), "missing \(expected) in \(lines.sorted())")
        }
        await credential.shutdown()
    }

    @Test func sinkCountersFollowSnapshotsAndNeverGoBack() {
        let metrics = RelayMetrics(enabled: true)
        var file = SinkStatus(kind: .file, name: "/var/log/a.jsonl", format: .envelope, upstreams: [])
        var unix = SinkStatus(kind: .unix, name: "/run/a.sock", format: .envelope, upstreams: [])
        func subscriber() -> SubscriberStatus {
            SubscriberStatus(pid: 1, uid: 0, gid: 0, connectedAt: .now(), queuedBytes: 0, queueCapacity: 10,
                             bytesWritten: 0, dropped: 0, upstreams: [])
        }
        file.bytesWritten = 100
        file.writes = 2
        unix.subscribers = [subscriber(), subscriber()]
        unix.dropped = 3
        unix.slowDisconnects = 1
        _ = Self.lines(metrics, sinks: [file, unix])
        file.bytesWritten = 150
        file.writes = 3
        file.bufferedBytes = 7
        var lines = Self.lines(metrics, sinks: [file, unix])
        for expected in [
            #"wsrelay_sink_bytes_written_total{sink="/var/log/a.jsonl",type="file"} 150"#,
            #"wsrelay_sink_writes_total{sink="/var/log/a.jsonl",type="file"} 3"#,
            #"wsrelay_sink_buffered_bytes{sink="/var/log/a.jsonl",type="file"} 7.0"#,
            #"wsrelay_sink_dropped_messages_total{sink="/run/a.sock",type="unix"} 3"#,
            #"wsrelay_subscribers{sink="/run/a.sock"} 2.0"#,
            #"wsrelay_subscriber_slow_disconnects_total{sink="/run/a.sock"} 1"#,
        ] {
            #expect(lines.contains(expected), "missing \(expected) in \(lines.sorted())")
        }
        #expect(!lines.contains { $0.hasPrefix(#"wsrelay_subscribers{sink="/var/log"#) }, "only socket sinks have subscribers")
        // The sink was reopened (reload) and counts from zero: the counter keeps growing.
        file.bytesWritten = 30
        unix.subscribers = []
        lines = Self.lines(metrics, sinks: [file, unix])
        #expect(lines.contains(#"wsrelay_sink_bytes_written_total{sink="/var/log/a.jsonl",type="file"} 180"#))
        #expect(lines.contains(#"wsrelay_subscribers{sink="/run/a.sock"} 0.0"#))
        // A sink no longer configured is no longer exported.
        lines = Self.lines(metrics, sinks: [unix])
        #expect(lines.allSatisfy { !$0.contains("/var/log/a.jsonl") })
    }

    @Test func everyFamilyHasHelpAndItsType() {
        let metrics = RelayMetrics(enabled: true)
        metrics.upstream(named: "a").observe(from: Self.state(.open), to: Self.state(.backingOff, disconnects: ["1006": 1]))
        _ = metrics.credential(named: "api")
        var jetstream = SinkStatus(kind: .jetstream, name: "nats://127.0.0.1:4222/x.{upstream}", format: .envelope, upstreams: [])
        jetstream.jetstream = .init(connectedServer: "nats://127.0.0.1:4222", inFlight: 3, pending: 0, acknowledged: 9,
                                    duplicates: 1, retried: 2)
        let lines = Self.lines(metrics, sinks: [SinkStatus(kind: .unix, name: "/s", format: .envelope, upstreams: []), jetstream])
        #expect(lines.contains(#"wsrelay_jetstream_retried_total{sink="nats://127.0.0.1:4222/x.{upstream}"} 2"#))
        #expect(lines.contains(#"wsrelay_jetstream_connected{sink="nats://127.0.0.1:4222/x.{upstream}"} 1.0"#))
        for family in RelayMetricFamily.allCases {
            #expect(lines.contains("# TYPE \(family.name) \(family.kind.rawValue)"), "\(family.name)")
            #expect(lines.contains("# HELP \(family.name) \(family.help)"), "\(family.name)")
        }
        #expect(lines.contains(#"wsrelay_build_info{version="\#(WSRelayVersion.string)"} 1.0"#))
    }

    @Test(arguments: [
        ("127.0.0.1:9464", MetricsListenAddress.tcp(host: "127.0.0.1", port: 9464)),
        ("localhost:1", .tcp(host: "localhost", port: 1)),
        ("[::1]:9464", .tcp(host: "::1", port: 9464)),
        ("/run/wsrelay/metrics.sock", .unix(path: "/run/wsrelay/metrics.sock")),
    ])
    func listenAddresses(_ text: String, _ expected: MetricsListenAddress) {
        #expect(MetricsListenAddress(text) == expected)
        #expect(MetricsListenAddress(text)?.description == text)
    }
}

/// The endpoint in-process: real sockets on 127.0.0.1 and in a temporary directory.
@Suite(.serialized, .mayBlock) struct MetricsEndpointTests {
    static let logger = Logger(label: "metrics-test")

    /// A loop of the suite's own: on the shared singleton, other tests' floods delayed an answer past 10 s.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func open(_ address: MetricsListenAddress, body: String = "x_total 1\n") async throws -> MetricsService {
        try await MetricsService.open(address, scrape: { Array(body.utf8) }, group: group, logger: logger)
    }

    static func port(_ service: MetricsService) -> Int {
        Int(service.boundDescription.split(separator: ":").last ?? "") ?? 0
    }

    @Test func servesMetricsKeepsAliveAndRefusesOtherPaths() async throws {
        let service = try await Self.open(.tcp(host: "127.0.0.1", port: 0), body: "# TYPE x_total counter\nx_total 1\n")
        let port = Self.port(service)
        let two = try MetricsTestClient.exchange(.tcp(port),
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(two.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "two answers on one connection: \(two)")
        #expect(two.contains("content-type: text/plain; version=0.0.4; charset=utf-8") || two.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        #expect(two.hasSuffix("\r\n\r\n# TYPE x_total counter\nx_total 1\n"))
        let missing = try MetricsTestClient.exchange(.tcp(port), "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(missing.hasPrefix("HTTP/1.1 404"))
        let head = try MetricsTestClient.exchange(.tcp(port), "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 200") && !head.contains("x_total"))
        let put = try MetricsTestClient.exchange(.tcp(port), "PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(put.hasPrefix("HTTP/1.1 405"))
        // An idle keep-alive connection (one answer read, still open) does not keep the endpoint open.
        let idle = try MetricsTestClient.connect(.tcp(port))
        defer { close(idle) }
        let request = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(write(idle, request, request.count) == request.count)
        #expect(MetricsTestClient.readUntil(idle, "x_total 1\n"))
        await service.close()
        #expect(throws: (any Error).self) { try MetricsTestClient.exchange(.tcp(port), "GET /metrics HTTP/1.0\r\n\r\n") }
        #expect(MetricsTestClient.readToEOF(idle) == "", "open connections are closed")
    }

    @Test func portInUseIsAStartupError() async throws {
        let first = try await Self.open(.tcp(host: "127.0.0.1", port: 0))
        let address = MetricsListenAddress.tcp(host: "127.0.0.1", port: Self.port(first))
        let error = await #expect(throws: SetupError.self) { try await Self.open(address) }
        #expect(error?.description.hasPrefix("metrics \(address): cannot listen: ") == true)
        #expect(error?.description.contains("EADDRINUSE") == true, "\(String(describing: error))")
        await first.close()
    }

    @Test func unixSocketPathModeStaleLiveAndRemoval() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("metrics.sock")
        // Not a socket: refused.
        try dir.write("metrics.sock", "x")
        let notASocket = await #expect(throws: SetupError.self) { try await Self.open(.unix(path: path)) }
        #expect(notASocket?.description.contains("not a socket") == true)
        unlink(path)

        let service = try await Self.open(.unix(path: path))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o660)
        let answer = try MetricsTestClient.exchange(.unix(path), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200") && answer.hasSuffix("x_total 1\n"))
        // Live: another daemon's socket is not stolen.
        let live = await #expect(throws: SetupError.self) { try await Self.open(.unix(path: path)) }
        #expect(live?.description.hasPrefix("metrics \(path): another process is already listening") == true)
        await service.close()
        #expect(access(path, F_OK) != 0, "removed at close")
    }
}

/// A blocking client for the endpoint tests: raw requests, the whole answer until the server closes.
enum MetricsTestClient {
    enum Target {
        case tcp(Int)
        case unix(String)
    }

    struct Failure: Error { var what: String }

    static func connect(_ target: Target) throws -> Int32 {
        switch target {
        case .tcp(let port):
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { close(fd); throw Failure(what: "connect: errno \(errno)") }
            return fd
        case .unix(let path):
            return try RawUnixSocket.connect(path)
        }
    }

    static func exchange(_ target: Target, _ request: String) throws -> String {
        let fd = try connect(target)
        defer { close(fd) }
        let bytes = Array(request.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw Failure(what: "write: errno \(errno)") }
        guard let answer = readToEOF(fd) else { throw Failure(what: "read: errno \(errno)") }
        return answer
    }

    /// Reads until what arrived ends with `marker` (false on EOF, an error or after 10 s).
    static func readUntil(_ fd: Int32, _ marker: String) -> Bool {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(fd, &byte, 1) == 1 {
            received.append(byte)
            if received.count >= marker.utf8.count, received.suffix(marker.utf8.count).elementsEqual(marker.utf8) { return true }
        }
        return false
    }

    /// Everything until EOF (nil on an error or after 10 s without EOF).
    static func readToEOF(_ fd: Int32) -> String? {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 { return String(decoding: received, as: UTF8.self) }
            guard n > 0 else { return nil }
            received.append(contentsOf: buffer[0..<n])
        }
    }
}

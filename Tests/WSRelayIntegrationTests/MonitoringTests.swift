import Foundation
import NIOPosix
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// The shipped monitoring files (etc/prometheus, etc/grafana) against Prometheus' own checker and against what
/// a real running wsrelay exports: a rule or a panel that names a series /metrics does not have would never
/// fire or never show anything, silently.
@Suite("monitoring: Prometheus rules and Grafana dashboard", .mayBlock, .serialized, .timeLimit(.minutes(2)))
struct MonitoringTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let rules = root.appendingPathComponent("etc/prometheus/wsrelay-rules.yml").path
    static let ruleTests = root.appendingPathComponent("etc/prometheus/wsrelay-rules.test.yml").path
    static let dashboard = root.appendingPathComponent("etc/grafana/wsrelay.json").path

    static func promtool(_ arguments: [String]) throws -> (status: Int32?, output: String) {
        let dir = try TemporaryDirectory("promtool")
        let result = try WSRelayProcess.runExternal("/usr/bin/promtool", arguments, directory: dir, name: "promtool")
        return (result.status, result.stdout + result.stderr)
    }

    @Test("promtool check rules accepts the rules")
    func checkRules() throws {
        let result = try Self.promtool(["check", "rules", Self.rules])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("SUCCESS: 7 rules found"), "\(result.output)")
    }

    @Test("promtool test rules: every alert fires when it should and stays quiet when it should not")
    func testRules() throws {
        let result = try Self.promtool(["test", "rules", Self.ruleTests])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("SUCCESS"), "\(result.output)")
        // Every alert of the rules file has a test case.
        let rulesText = try String(contentsOfFile: Self.rules, encoding: .utf8)
        let testsText = try String(contentsOfFile: Self.ruleTests, encoding: .utf8)
        let alerts = Self.values(of: "- alert:", in: rulesText)
        #expect(alerts.count == 7)
        for alert in alerts {
            #expect(testsText.contains("alertname: \(alert)"), "no test for \(alert)")
        }
    }

    @Test("the dashboard, the rules and their tests use only series a running wsrelay exports, with its labels")
    func namesMatchTheRealEndpoint() async throws {
        let exported = try await Self.scrapeEverything()
        let names = Set(exported.samples.map(\.name)).union(exported.families.keys)

        let dashboardNames = try Self.dashboardMetricNames()
        #expect(!dashboardNames.isEmpty)
        #expect(dashboardNames.subtracting(names).isEmpty,
                "dashboard names not exported: \(dashboardNames.subtracting(names).sorted())")
        // The dashboard shows every family wsrelay has.
        let families = Set(RelayMetricFamily.allCases.map(\.name))
        let shown = Set(dashboardNames.map(Self.family))
        #expect(families.subtracting(shown).isEmpty, "families missing from the dashboard: \(families.subtracting(shown).sorted())")

        let ruleNames = Self.metricNames(inYAML: try String(contentsOfFile: Self.rules, encoding: .utf8))
        #expect(ruleNames.count >= 6, "\(ruleNames)")
        #expect(ruleNames.subtracting(names).isEmpty, "rule names not exported: \(ruleNames.subtracting(names).sorted())")

        // The rule tests' input series: exported names with exactly the exported label names (Prometheus adds
        // instance and job when it scrapes).
        let series = try Self.inputSeries(try String(contentsOfFile: Self.ruleTests, encoding: .utf8))
        #expect(series.count >= 10)
        for (name, labels) in series {
            let real = exported.samples.filter { $0.name == name }
            #expect(!real.isEmpty, "\(name) is not exported")
            for sample in real {
                #expect(Set(sample.labels.keys).union(["instance", "job"]) == labels,
                        "\(name): test labels \(labels.sorted()), exported \(sample.labels.keys.sorted())")
            }
        }
    }

    // MARK: What the real binary exports

    /// Runs wsrelay with every kind of part (a credential, an upstream the server closes with 4001, one with fast
    /// pings, a file, a socket and a JetStream sink on a real nats-server) and scrapes until every declared
    /// family has appeared.
    static func scrapeEverything() async throws -> PrometheusText {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let dir = try TemporaryDirectory("monitoring")
        let nats = try NATSServer(in: dir)
        defer { nats.kill() }
        let port = MetricsScrape.freePort()
        let before = Date().timeIntervalSince1970
        try dir.write("token", "monitoring-test-token\n", mode: 0o600)
        let daemon = try RunningDaemon(config: """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"

            [metrics]
            listen = "127.0.0.1:\(port)"

            [[upstream]]
            name = "feed"
            url = "\(server.url)/feed?count=5&size=20&close=4001"
            auth = "main"
            [upstream.reconnect]
            initial = "200ms"
            max = "1s"

            [[upstream]]
            name = "live"
            url = "\(server.url)/live"
            ping_interval = "200ms"

            [auth.main]
            type = "file"
            path = "\(dir.file("token"))"

            [[sink]]
            type = "file"
            path = "\(dir.file("out.jsonl"))"
            fsync = "never"

            [[sink]]
            type = "unix"
            path = "\(dir.file("sub.sock"))"

            [[sink]]
            type = "jetstream"
            servers = ["\(nats.url)"]
            subject = "wsrelay.{upstream}"
            stream = { name = "WSRELAY", replicas = 1 }
            """, in: dir)
        let declared = Set(RelayMetricFamily.allCases.map(\.name))
        var last: PrometheusText?
        let complete = eventually {
            guard let response = try? MetricsScrape.get(port: port), response.status == 200,
                  let parsed = try? PrometheusText.parse(response.body) else { return false }
            last = parsed
            return declared.isSubset(of: parsed.families.keys)
                && (parsed.value("wsrelay_upstream_ping_rtt_seconds_count", ["upstream": "live"]) ?? 0) >= 1
        }
        #expect(daemon.stop() == 0)
        let metrics = try #require(last, "no scrape succeeded; log:\n\(daemon.log)")
        #expect(complete, "families never exported: \(declared.subtracting(metrics.families.keys).sorted())")
        let started = try #require(metrics.value("wsrelay_start_time_seconds"))
        #expect(started >= before - 1 && started <= Date().timeIntervalSince1970, "start time \(started)")
        return metrics
    }

    // MARK: Names in the files

    static var metricName: Regex<AnyRegexOutput> { try! Regex("wsrelay_[a-z0-9_]+") }

    /// `wsrelay_…` names in the dashboard's queries (panel targets and template variables).
    static func dashboardMetricNames() throws -> Set<String> {
        let data = try Data(contentsOf: URL(fileURLWithPath: dashboard))
        var queries: [String] = []
        func walk(_ value: Any) {
            if let object = value as? [String: Any] {
                for (key, inner) in object {
                    if ["expr", "query", "definition"].contains(key), let text = inner as? String { queries.append(text) }
                    walk(inner)
                }
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(try JSONSerialization.jsonObject(with: data))
        #expect(queries.count >= 20, "\(queries.count) queries")
        return Set(queries.flatMap { $0.matches(of: metricName).map { String($0.output[0].substring!) } })
    }

    /// `wsrelay_…` names outside comments.
    static func metricNames(inYAML text: String) -> Set<String> {
        let lines = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
        return Set(lines.flatMap { $0.matches(of: metricName).map { String($0.output[0].substring!) } })
    }

    /// `series: 'name{a="1", b="2"}'` lines: the name and its label names.
    static func inputSeries(_ text: String) throws -> [(String, Set<String>)] {
        try values(of: "- series:", in: text).map { raw in
            let series = raw.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            let open = try #require(series.firstIndex(of: "{"), "\(series)")
            let labels = series[series.index(after: open)...].dropLast().split(separator: ",").map {
                $0.split(separator: "=")[0].trimmingCharacters(in: .whitespaces)
            }
            return (String(series[..<open]), Set(labels))
        }
    }

    /// The rest of every line starting (after indentation) with `key`.
    static func values(of key: String, in text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix(key) ? trimmed.dropFirst(key.count).trimmingCharacters(in: .whitespaces) : nil
        }
    }

    /// The family of a sample name (`…_bucket`, `…_sum`, `…_count` of a histogram).
    static func family(_ name: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if RelayMetricFamily(rawValue: base) != nil { return base }
        }
        return name
    }
}

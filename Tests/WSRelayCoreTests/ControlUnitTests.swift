import Testing
@testable import WSRelayCore

@Suite("reload plan")
struct ReloadPlanTests {
    static func config(_ body: String) -> Configuration {
        ConfigTestSupport.load(body)!.configuration
    }

    static let base = """
        [[upstream]]
        name = "a"
        url = "ws://127.0.0.1:1/a"
        [[upstream]]
        name = "b"
        url = "ws://127.0.0.1:1/b"
        auth = "api"
        [[upstream]]
        name = "d"
        url = "ws://127.0.0.1:1/d"
        [auth.api]
        type = "static"
        token_file = "/run/t"
        [[sink]]
        type = "stdout"
        """

    @Test("unchanged, changed, added, removed; a changed credential changes the upstreams using it")
    func diff() {
        let old = Self.config(Self.base)
        var new = old
        #expect(ReloadPlan(from: old, to: new).isEmpty)
        #expect(ReloadPlan(from: old, to: new).unchangedUpstreams == ["a", "b", "d"])

        new.upstreams.removeAll { $0.name == "d" }
        var c = new.upstreams[0]
        c.name = "c"
        new.upstreams.append(c)
        new.upstreams[0].pingInterval = .seconds(7)
        let plan = ReloadPlan(from: old, to: new)
        #expect(plan.changedUpstreams == ["a"])
        #expect(plan.unchangedUpstreams == ["b"])
        #expect(plan.addedUpstreams == ["c"])
        #expect(plan.removedUpstreams == ["d"])
        #expect(!plan.sinksChanged && plan.changedCredentials.isEmpty && plan.needsRestart.isEmpty)
        #expect(plan.summary == "upstreams: +c, -d, ~a, 1 unchanged")

        var rotated = old
        rotated.auth[0].refreshSkew = .seconds(5)
        let credentialPlan = ReloadPlan(from: old, to: rotated)
        #expect(credentialPlan.changedCredentials == ["api"])
        #expect(credentialPlan.changedUpstreams == ["b"])
        #expect(credentialPlan.unchangedUpstreams == ["a", "d"])
    }

    @Test("sinks, and settings that only a restart applies, are named")
    func sinksAndRestartOnly() {
        let old = Self.config(Self.base)
        var new = old
        new.sinks[0].format = .raw
        new.daemon.controlSocket = "/run/other.sock"
        new.metrics.listen = "127.0.0.1:9100"
        new.daemon.logLevel = .debug
        let plan = ReloadPlan(from: old, to: new)
        #expect(plan.sinksChanged)
        #expect(plan.needsRestart == ["daemon.control_socket", "metrics.listen"])
        #expect(plan.unchangedUpstreams == ["a", "b", "d"])
    }
}

@Suite("control requests")
struct ControlRequestTests {
    @Test("JSON and plain-word requests; every request's own line parses back to it")
    func parsing() throws {
        let all: [ControlRequest] = [
            .status, .reload, .reconnect(upstream: "m\"x"), .pause(upstream: "a"), .resume(upstream: "a"),
            .refreshCredential(name: "api"),
        ]
        for request in all {
            #expect(try ControlRequest.parse(Array(request.line.utf8)).get() == request)
        }
        #expect(try ControlRequest.parse(Array("pause market".utf8)).get() == .pause(upstream: "market"))
        #expect(try ControlRequest.parse(Array("status\r".utf8)).get() == .status)
        #expect(try ControlRequest.parse(Array(#"{"command":"refresh-credential","name":"api"}"#.utf8)).get()
            == .refreshCredential(name: "api"))
    }

    @Test("garbage gets an error that says what is expected", arguments: [
        "{\"command\":", "[1]", "{\"cmd\":\"status\"}", "{\"command\":\"pause\"}", "launch missiles now", "\u{FF}\u{00}",
        "{\"command\":\"explode\"}",
    ])
    func errors(_ line: String) {
        guard case .failure(let error) = ControlRequest.parse(Array(line.utf8)) else {
            Issue.record("accepted \(line)")
            return
        }
        #expect(error.description.contains("command") || error.description.contains("expected"), "\(error)")
    }

    @Test("line framing: split on LF across chunks; an endless line is reported")
    func framing() {
        var framer = LineFramer(maximumLength: 8)
        var lines: [String] = []
        #expect(!framer.append(Array("sta".utf8)) { lines.append(String(decoding: $0, as: UTF8.self)) })
        #expect(!framer.append(Array("tus\nrel".utf8)) { lines.append(String(decoding: $0, as: UTF8.self)) })
        #expect(!framer.append(Array("oad\n".utf8)) { lines.append(String(decoding: $0, as: UTF8.self)) })
        #expect(lines == ["status", "reload"])
        #expect(framer.append(Array("123456789".utf8)) { _ in })
    }

    @Test("peer policy: root, the daemon's uid, and primary or supplementary groups listed")
    func peerPolicy() {
        let policy = ControlPeerPolicy(daemonUID: 998, allowedGIDs: [990])
        #expect(policy.allows(uid: 0, gid: 0, supplementaryGIDs: []))
        #expect(policy.allows(uid: 998, gid: 998, supplementaryGIDs: []))
        #expect(policy.allows(uid: 1000, gid: 990, supplementaryGIDs: []))
        #expect(policy.allows(uid: 1000, gid: 1000, supplementaryGIDs: [27, 990]))
        #expect(!policy.allows(uid: 1000, gid: 1000, supplementaryGIDs: [27]))
        #expect(!ControlPeerPolicy(daemonUID: 998, allowedGIDs: []).allows(uid: 65534, gid: 65534, supplementaryGIDs: []))
    }
}

@Suite("status report")
struct StatusReportTests {
    @Test("message rate spans the kept samples; a counter that went back starts over")
    func rates() {
        var meter = MessageRateMeter(depth: 3)
        let t0 = ContinuousClock.now
        #expect(meter.rate(of: "a", messages: 10, at: t0) == 0)
        meter.record([("a", 0)], at: t0)
        meter.record([("a", 50)], at: t0 + .seconds(5))
        #expect(meter.rate(of: "a", messages: 100, at: t0 + .seconds(10)) == 10)
        meter.record([("a", 100)], at: t0 + .seconds(10))
        meter.record([("a", 100)], at: t0 + .seconds(15))  // the first sample falls out
        #expect(meter.rate(of: "a", messages: 100, at: t0 + .seconds(20)) == 50.0 / 15.0)
        meter.record([("a", 3)], at: t0 + .seconds(20))
        #expect(meter.rate(of: "a", messages: 3, at: t0 + .seconds(20)) == 0)
        meter.record([], at: t0 + .seconds(25))
        #expect(meter.rate(of: "a", messages: 9, at: t0 + .seconds(30)) == 0)
        // One upstream removed and another added in the same round: the removed one is forgotten all the same.
        meter.record([(name: "a", messages: 0), (name: "b", messages: 0)], at: t0 + .seconds(30))
        meter.record([(name: "a", messages: 10), (name: "c", messages: 0)], at: t0 + .seconds(35))
        #expect(meter.rate(of: "b", messages: 10, at: t0 + .seconds(40)) == 0)
        #expect(meter.rate(of: "a", messages: 20, at: t0 + .seconds(40)) == 2)
    }

    @Test("the report converts instants to wall time and hides the URL's query; the table shows what matters")
    func reportAndTable() throws {
        let now = ContinuousClock.now
        let wall = WallClockTime(microsecondsSinceEpoch: 1_700_000_000_000_000)
        var settings = UpstreamFixtures.settings()
        settings.url = WebSocketURL(secure: true, host: "example.net", port: 443, target: "/feed?token=s3cret")
        settings.auth = "api"
        var state = UpstreamState(name: settings.name, phase: .backingOff, since: now - .seconds(90), epoch: 7)
        state.nextAttempt = now + .seconds(4)
        state.lastCloseCode = 4001
        state.lastCloseReason = "token expired"
        state.lastError = "refresh failed: invalid_grant"
        state.messages = 1234
        state.disconnects = ["4001": 2]
        let credential = CredentialStatus(name: "api", type: "oauth2", state: "failed: invalid_grant",
                                          tokenFingerprint: "sha256:0badc0de")
        let builder = StatusReportBuilder(configPath: "/etc/wsrelay/wsrelay.toml", startedAt: wall)
        let report = builder.build(
            upstreams: [(settings, state)], credentials: [credential], sinks: [], summary: "0/1 upstreams connected",
            rates: MessageRateMeter(), now: now, wallNow: wall)
        let upstream = try #require(report.upstreams.first)
        #expect(upstream.url == "wss://example.net/feed?…")
        #expect(upstream.since == WallClockTime(microsecondsSinceEpoch: wall.microsecondsSinceEpoch - 90_000_000).rfc3339)
        #expect(upstream.nextRetryInSeconds == 4)
        #expect(upstream.credentialState == "failed: invalid_grant" && upstream.tokenFingerprint == "sha256:0badc0de")

        let table = StatusTable.render(report)
        #expect(table.contains("backing off"))
        #expect(table.contains("4001 token expired"))
        #expect(table.contains("in 4s"))
        #expect(table.contains("90s ago"))
        #expect(table.contains("last error: refresh failed: invalid_grant"))
        #expect(!table.contains("s3cret"))

        let line = ControlReply(ok: true, status: report).line
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(try ControlReply.decode(line.dropLast()).status == report)
    }
}

@Suite("STATUS= line")
struct StatusLineTests {
    @Test("the worst problem comes first: stopped, then failing, then paused")
    func worstFirst() {
        let now = ContinuousClock.now
        var paused = UpstreamState(name: "quotes", phase: .paused, since: now)
        paused.lastCloseCode = 1000
        var failing = UpstreamState(name: "market", phase: .backingOff, since: now)
        failing.lastError = "401 refresh failed: invalid_grant"
        var stopped = UpstreamState(name: "news", phase: .stopped, since: now)
        stopped.lastCloseCode = 4100
        stopped.lastCloseReason = "banned"
        let fine = UpstreamState(name: "ok", phase: .open, since: now)
        let problems = UpstreamStatusSummary.problems([paused, fine, failing, stopped])
        #expect(problems == ["news: stopped: closed 4100 banned", "market: 401 refresh failed: invalid_grant", "quotes: paused"])
        var board = DaemonStatusBoard.Snapshot()
        board.upstreamsConfigured = 4
        board.upstreamsConnected = 1
        board.subscribers = 2
        board.problems = problems
        #expect(DaemonStatusBoard.line(board).hasPrefix("3/4 upstreams down (news: stopped: closed 4100 banned; market: "))
        #expect(DaemonStatusBoard.line(board).hasSuffix("2 subscribers"))
    }
}

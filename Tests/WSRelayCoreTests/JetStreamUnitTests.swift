import NIOCore
import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

private func jetstream(_ body: String) -> String {
    S.upstream + "\n[[sink]]\ntype = \"jetstream\"\nservers = [\"nats://127.0.0.1:4222\"]\n" + body + "\n"
}

@Suite("JetStream sink: config")
struct JetStreamConfigTests {
    @Test func defaultsAndAllKeys() throws {
        let c = try #require(S.load(jetstream("""
            subject = "md.{upstream}.raw"
            user = "relay"
            password_file = "/etc/wsrelay/nats-password"
            max_in_flight = 256
            ack_timeout = "3s"
            buffer = "1MiB"
            on_full = "drop"
            dedupe = { json_pointer = "/u" }
            tls = { ca_file = "/etc/ca.pem" }
            stream = { name = "MD", replicas = 3, max_age = "24h", max_bytes = "10GiB", duplicate_window = "5m" }
            """))).configuration
        guard case .jetstream(let j) = c.sinks.first?.kind else { Issue.record("not a jetstream sink"); return }
        #expect(j.servers == ["nats://127.0.0.1:4222"])
        #expect(j.subject.render(upstream: "feed") == "md.feed.raw")
        #expect(j.subject.wildcard == "md.*.raw")
        #expect(j.auth == .userPassword(user: "relay", password: .file("/etc/wsrelay/nats-password")))
        #expect(j.maxInFlight == 256 && j.ackTimeout == .seconds(3) && j.buffer == 1 << 20 && j.onFull == .drop)
        #expect(j.dedupe == .jsonPointer("/u"))
        #expect(j.tls?.caFile == "/etc/ca.pem")
        #expect(j.stream?.replicas == 3 && j.stream?.duplicateWindow == .seconds(300) && j.stream?.maxBytes == 10 << 30)
        let defaults = try #require(S.load(jetstream("subject = \"x.{upstream}\""))).configuration
        guard case .jetstream(let d) = defaults.sinks.first?.kind else { return }
        #expect(d.dedupe == .none && d.onFull == .block && d.auth == .none && d.stream == nil && d.maxInFlight == 1024)
    }

    @Test func rendersBackToTheSameSettings() throws {
        let c = try #require(S.load(jetstream("""
            subject = "md.{upstream}"
            token_env = "NATS_TOKEN"
            dedupe = "payload"
            stream = { name = "MD", subjects = ["md.>"], replicas = 3 }
            """))).configuration
        let again = try #require(S.load(ConfigRenderer.render(c))).configuration
        #expect(again.sinks == c.sinks)
    }

    @Test func errorsNameTheKey() {
        S.expectError(jetstream("subject = \"a.{upstrem}\""), at: "sink[0].subject", "unknown variable {upstrem}")
        S.expectError(jetstream("subject = \"a..{upstream}\""), at: "sink[0].subject", "empty token")
        S.expectError(jetstream("subject = \"a.*.{upstream}\""), at: "sink[0].subject", "wildcard")
        S.expectError(jetstream("subject = \"a.{upstream}\"\ndedupe = \"hash\""), at: "sink[0].dedupe", "\"payload\"")
        S.expectError(jetstream("subject = \"a.{upstream}\"\nstream = { name = \"A.B\" }"), at: "sink[0].stream.name", "invalid stream name")
        S.expectError(jetstream("subject = \"a.{upstream}\"\nstream = { name = \"A\", replicas = 7 }"), at: "sink[0].stream.replicas")
        S.expectError(jetstream("subject = \"a.{upstream}\"\nnkey_seed_file = \"/k\""), at: "sink[0].nkey", "required key is missing")
        S.expectError(jetstream("subject = \"a.{upstream}\"\npath = \"/x\""), at: "sink[0].path", "only valid for sink type \"file\"")
        S.expectError(S.upstream + "\n[[sink]]\ntype = \"jetstream\"\nsubject = \"a.{upstream}\"\nservers = [\"http://x:1\"]\n",
                      at: "sink[0].servers[0]", "nats://HOST:PORT")
        S.expectError(S.upstream + "\n[[sink]]\ntype = \"jetstream\"\nsubject = \"a.{upstream}\"\n"
                        + "servers = [\"tls://n1.example:4222\", \"tls://n2.example:4222\"]\n",
                      at: "sink[0].tls.server_name", "different host names")
    }

    @Test func tlsVerifiesOneHostName() throws {
        let c = try #require(S.load(jetstream("""
            subject = "a.{upstream}"
            tls = { ca_file = "/etc/ca.pem" }
            """))).configuration
        guard case .jetstream(let j) = c.sinks.first?.kind else { return }
        #expect(j.usesTLS && j.verifiedHostName == "127.0.0.1")
        var cluster = JetStreamSinkSettings(servers: ["tls://n1.example:4222", "tls://n2.example:4222"], subject: j.subject)
        #expect(cluster.verifiedHostName == nil)
        cluster.tls = JetStreamTLSSettings()
        cluster.tls?.serverName = "nats.example"
        #expect(cluster.verifiedHostName == "nats.example")
        #expect(JetStreamSinkSettings.host(of: "nats://[::1]:4222") == "::1")
    }
}

@Suite("JetStream sink: publish window")
struct PublishWindowTests {
    @Test func boundsWhatIsInFlight() {
        var w = PublishWindow<Int>(limit: 2)
        for i in 1...5 { w.append(i, bytes: 10) }
        let a = w.next(), b = w.next()
        #expect(a?.item == 1 && b?.item == 2)
        #expect(w.next() == nil && w.inFlightCount == 2 && w.pendingCount == 3)
        #expect(w.acknowledged(a!.id, attempt: 1) == .released(10))
        #expect(w.next()?.item == 3)
    }

    @Test func failuresAreRetriedInOrderBeforeAnythingNewer() {
        var w = PublishWindow<Int>(limit: 4)
        for i in 1...6 { w.append(i, bytes: 1) }
        let sent = (0..<4).compactMap { _ in w.next() }
        #expect(sent.map(\.item) == [1, 2, 3, 4])
        #expect(w.failed(sent[2].id, attempt: 1) == .willRetry)
        #expect(w.next() == nil, "nothing new while others are unresolved")
        #expect(w.failed(sent[0].id, attempt: 1) == .willRetry)
        #expect(w.acknowledged(sent[1].id, attempt: 1, duplicate: false) == .released(1))
        #expect(w.next() == nil)
        #expect(w.acknowledged(sent[3].id, attempt: 1) == .released(1))
        let again = (0..<4).compactMap { _ in w.next() }
        #expect(again.map(\.item) == [1, 3, 5, 6])
        #expect(again[0].attempts == 2 && again[2].attempts == 1)
        #expect(w.retried == 2)
    }

    @Test func anAnswerToAnEarlierAttemptIsIgnored() {
        var w = PublishWindow<Int>(limit: 4)
        w.append(1, bytes: 5)
        let first = w.next()!
        w.failAllInFlight()  // reconnect
        let second = w.next()!
        #expect(second.id == first.id && second.attempts == 2)
        #expect(w.failed(first.id, attempt: 1) == .unknown, "the old attempt's timeout does not touch the new one")
        #expect(w.acknowledged(second.id, attempt: 2, duplicate: true) == .released(5))
        #expect(w.duplicates == 1 && w.isEmpty)
    }

    @Test func abandonCountsEverythingUnacknowledged() {
        var w = PublishWindow<Int>(limit: 2)
        for i in 1...5 { w.append(i, bytes: 3) }
        _ = w.next()
        let (messages, bytes) = w.abandon()
        #expect(messages == 5 && bytes == 15 && w.isEmpty)
    }
}

@Suite("JetStream sink: message ids and subjects")
struct JetStreamMessageIDTests {
    func message(_ text: String, upstream: String = "feed", epoch: UInt64 = 1, seq: UInt64 = 1) -> ReceivedMessage {
        ReceivedMessage(upstream: upstream, epoch: epoch, seq: seq, receivedAt: .now(), kind: .text,
                        payload: ByteBuffer(string: text))
    }

    @Test func noneIsUniquePerRunAndMessage() {
        let a = MessageIDMaker(dedupe: .none, runID: "r1"), b = MessageIDMaker(dedupe: .none, runID: "r2")
        #expect(a.id(for: message("x", seq: 1)).id == "feed:r1:1:1")
        #expect(a.id(for: message("x", seq: 2)).id != a.id(for: message("x", seq: 1)).id)
        #expect(a.id(for: message("x")).id != b.id(for: message("x")).id, "a restarted relay does not collide")
    }

    @Test func payloadIsTheSameOnEveryRelay() {
        let a = MessageIDMaker(dedupe: .payload, runID: "r1"), b = MessageIDMaker(dedupe: .payload, runID: "r2")
        #expect(a.id(for: message("{\"n\":1}", seq: 1)).id == b.id(for: message("{\"n\":1}", seq: 9)).id)
        #expect(a.id(for: message("{\"n\":1}")).id != a.id(for: message("{\"n\":2}")).id)
        #expect(a.id(for: message("{\"n\":1}", upstream: "a")).id != a.id(for: message("{\"n\":1}", upstream: "b")).id)
    }

    @Test func jsonPointerUsesTheUpstreamsOwnID() {
        let m = MessageIDMaker(dedupe: .jsonPointer("/data/u"))
        #expect(m.id(for: message("{\"data\":{\"u\":12345678901234567,\"p\":1}}")) == ("feed:12345678901234567", false))
        #expect(m.id(for: message("{\"data\":{\"u\":\"abc\"}}")).id == "feed:abc")
        let missing = m.id(for: message("{\"other\":1}"))
        #expect(missing.usedFallback && missing.id.hasPrefix("feed:p:"))
        let escaped = MessageIDMaker(dedupe: .jsonPointer("/a~1b"))
        #expect(escaped.id(for: message("{\"a/b\":7}")).id == "feed:7")
    }

    @Test func subjectsAndFilters() {
        #expect(NATSSubject.matches("a.b.c", filter: "a.*.c"))
        #expect(NATSSubject.matches("a.b.c", filter: "a.>"))
        #expect(!NATSSubject.matches("a.b.c", filter: "a.*"))
        #expect(!NATSSubject.matches("a", filter: "a.>"))
        #expect(SubjectTemplate.subjectProblem("a b") != nil)
    }

    @Test func streamMismatchNamesTheKey() {
        var facts = StreamFacts()
        facts.subjects = ["x.*"]
        facts.replicas = 1
        facts.duplicateWindowNanoseconds = 120_000_000_000
        var wanted = JetStreamStreamSettings(name: "X")
        #expect(facts.mismatch(with: wanted) == nil, "keys left out are not compared")
        wanted.replicas = 3
        #expect(facts.mismatch(with: wanted)?.hasPrefix("stream.replicas: the stream has 1") == true)
        wanted.replicas = 1
        wanted.duplicateWindow = .seconds(60)
        #expect(facts.mismatch(with: wanted)?.contains("stream.duplicate_window") == true)
    }
}

@Suite("JetStream sink: status")
struct JetStreamStatusTests {
    @Test func aFailingSinkComesFirstInStatusLine() {
        var failing = SinkStatus(kind: .jetstream, name: "nats://10.0.0.1:4222/x.{upstream}", format: .envelope, upstreams: [])
        failing.failing = true
        failing.lastError = "cannot connect to nats://10.0.0.1:4222: No server available for connection"
        failing.jetstream = .init(connectedServer: nil, inFlight: 0, pending: 12, acknowledged: 0, duplicates: 0, retried: 0)
        var healthy = failing
        healthy.failing = false
        #expect(healthy.problem == nil)
        #expect(SinkStatus(kind: .file, name: "/f", format: .envelope, upstreams: []).problem == nil)
        var board = DaemonStatusBoard.Snapshot()
        board.upstreamsConfigured = 1
        board.upstreamsConnected = 1
        board.sinkProblems = [failing.problem!]
        #expect(DaemonStatusBoard.line(board)
            == "1 sink failing (jetstream nats://10.0.0.1:4222/x.{upstream}: cannot connect to nats://10.0.0.1:4222: "
            + "No server available for connection); 1/1 upstreams connected, 0 messages, 0 subscribers")
    }
}

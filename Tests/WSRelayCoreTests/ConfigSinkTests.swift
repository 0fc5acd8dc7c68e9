import Testing

@testable import WSRelayCore

private typealias S = ConfigTestSupport

private func withSink(_ body: String) -> String {
    S.upstream + "\n[[sink]]\n" + body + "\n"
}

@Suite("Config: [[sink]]")
struct ConfigSinkTests {
    @Test func fileSinkDefaults() throws {
        let c = try #require(S.load(withSink("type = \"file\"\npath = \"/var/out.jsonl\""))).configuration
        #expect(c.sinks == [SinkSettings(kind: .file(FileSinkSettings(path: "/var/out.jsonl")))])
        let s = c.sinks[0]
        #expect(s.upstreams.isEmpty)
        #expect(s.format == .envelope)
        #expect(!s.events)
        guard case .file(let f) = s.kind else { return }
        #expect(f.mode == 0o640)
        #expect(f.fsync == .interval)
        #expect(f.fsyncInterval == .seconds(1))
        #expect(f.rotateSize == nil)
        #expect(f.rotateKeep == 5)
        #expect(f.buffer == 64 << 20)
        #expect(f.onFull == .block)
    }

    @Test func fileSinkAllKeys() throws {
        let body = """
            type = "file"
            upstreams = ["feed"]
            format = "raw"
            events = true
            path = "/o"
            mode = 0o600
            fsync = "always"
            fsync_interval = "100ms"
            rotate_size = "1GiB"
            rotate_keep = 9
            buffer = "64KiB"
            on_full = "drop"
            """
        let c = try #require(S.load(withSink(body))).configuration
        var f = FileSinkSettings(path: "/o")
        f.mode = 0o600
        f.fsync = .always
        f.fsyncInterval = .milliseconds(100)
        f.rotateSize = 1 << 30
        f.rotateKeep = 9
        f.buffer = 64 << 10
        f.onFull = .drop
        var expected = SinkSettings(kind: .file(f))
        expected.upstreams = ["feed"]
        expected.format = .raw
        expected.events = true
        #expect(c.sinks == [expected])
    }

    @Test func fileModes() throws {
        for (text, mode) in [("0o640", 0o640), ("\"0640\"", 0o640), ("\"600\"", 0o600), ("\"0o755\"", 0o755), ("0", 0)] {
            let c = try #require(S.load(withSink("type = \"file\"\npath = \"/o\"\nmode = \(text)"))).configuration
            guard case .file(let f) = c.sinks[0].kind else { continue }
            #expect(f.mode == UInt32(mode), "\(text)")
        }
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nmode = 0o1777"), at: "sink[0].mode", "at most 0o777")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nmode = \"0999\""), at: "sink[0].mode", "octal digits")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nmode = 640"), at: "sink[0].mode", "found 640 (decimal)", "0o640")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nmode = true"), at: "sink[0].mode", "expected a file mode")
    }

    @Test func fileSinkErrors() {
        S.expectError(withSink("type = \"file\""), at: "sink[0].path", "required key is missing")
        S.expectError(withSink("type = \"file\"\npath = \"out.jsonl\""), at: "sink[0].path", "absolute path")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nbuffer = \"4KiB\""), at: "sink[0].buffer", "at least 64KiB")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nrotate_keep = 0"), at: "sink[0].rotate_keep", "between 1 and")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\nfsync = \"sometimes\""), at: "sink[0].fsync", "\"never\", \"interval\", \"always\"")
        S.expectError(withSink("type = \"file\"\npath = \"/o\"\non_full = \"drp\""), at: "sink[0].on_full", "did you mean \"drop\"?")
        let w = S.warnings(withSink("type = \"file\"\npath = \"/o\"\nrotate_keep = 3"))
        #expect(w.map(\.keyPath) == ["sink[0].rotate_keep"])
    }

    @Test func unixSink() throws {
        let body = """
            type = "unix"
            path = "/run/s.sock"
            listen_fd_name = "stream"
            owner = "u"
            group = "g"
            allow_uids = [1000]
            allow_gids = [990, 991]
            queue = "4KiB"
            slow_consumer = "drop"
            """
        let c = try #require(S.load(withSink(body))).configuration
        var u = UnixSinkSettings(path: "/run/s.sock")
        u.listenFDName = "stream"
        u.owner = "u"
        u.group = "g"
        u.allowUIDs = [1000]
        u.allowGIDs = [990, 991]
        u.queue = 4096
        u.slowConsumer = .drop
        #expect(c.sinks == [SinkSettings(kind: .unix(u))])

        let fdOnly = try #require(S.load(withSink("type = \"unix\"\nlisten_fd_name = \"s\""))).configuration
        guard case .unix(let v) = fdOnly.sinks[0].kind else { return }
        #expect(v.path == nil)
        #expect(v.mode == 0o660)
        #expect(v.queue == 8 << 20)
        #expect(v.slowConsumer == .disconnect)

        S.expectError(withSink("type = \"unix\""), at: "sink[0].path", "path, listen_fd_name")
        S.expectError(withSink("type = \"unix\"\npath = \"/s\"\nqueue = 100"), at: "sink[0].queue", "at least 4KiB")
        S.expectError(withSink("type = \"unix\"\npath = \"/s\"\nallow_uids = [\"root\"]"), at: "sink[0].allow_uids[0]", "numeric ID")
        S.expectError(withSink("type = \"unix\"\nlisten_fd_name = \"a:b\""), at: "sink[0].listen_fd_name", "FileDescriptorName")
        S.expectError(withSink("type = \"unix\"\npath = \"/run/wsrelay/control.sock\""), at: "sink[0].path", "control_socket")
    }

    @Test func stdoutAndJournal() throws {
        let c = try #require(S.load(withSink("type = \"stdout\"\nformat = \"raw\"") + "[[sink]]\ntype = \"journal\"\nevents = true\n")).configuration
        #expect(c.sinks.map(\.kind) == [.stdout, .journal])
        #expect(c.sinks[0].format == .raw)
        #expect(c.sinks[1].events)
        S.expectError(withSink("type = \"stdout\"\npath = \"/x\""), at: "sink[0].path", "only valid for sink type \"file\" or \"unix\" (this sink is type \"stdout\")")
        S.expectError(withSink("type = \"journal\"\nqueue = \"1MiB\""), at: "sink[0].queue", "only valid for sink type \"unix\"")
    }

    @Test func typeAndReferences() {
        S.expectError(withSink("path = \"/x\""), at: "sink[0].type", "required key is missing")
        S.expectError(withSink("type = \"files\""), at: "sink[0].type", "did you mean \"file\"?")
        S.expectError(withSink("type = \"stdout\"\nupstreams = [\"fed\"]"), at: "sink[0].upstreams[0]", "unknown upstream \"fed\"", "did you mean \"feed\"?")
        S.expectError(withSink("type = \"stdout\"\nupstreams = \"feed\""), at: "sink[0].upstreams", "expected an array of strings")
        S.expectError(withSink("type = \"stdout\"\nformat = \"json\""), at: "sink[0].format", "\"envelope\", \"raw\"")
        S.expectError("sink = { type = \"stdout\" }\n" + S.upstream, at: "sink", "expected an array of tables")
    }

    @Test func duplicatePaths() {
        S.expectError(
            withSink("type = \"unix\"\npath = \"/s\"") + "[[sink]]\ntype = \"unix\"\npath = \"/s\"\n",
            at: "sink[1].path", "sink[0] and sink[1] both use path \"/s\""
        )
        S.expectError(
            withSink("type = \"file\"\npath = \"/s\"") + "[[sink]]\ntype = \"stdout\"\n[[sink]]\ntype = \"unix\"\npath = \"/s\"\n",
            at: "sink[2].path", "sink[0] and sink[2]"
        )
    }
}

import Testing
@testable import WSRelayCore

@Suite("Subscriber requests, MiniJSON and tail formatting")
struct SinkJSONTests {
    @Test func parsesSubscribe() {
        #expect(SubscribeRequest.parse(Array(#"{"subscribe":["market","news"]}"#.utf8)) == .success(.subscribe(["market", "news"])))
        #expect(SubscribeRequest.parse(Array(#"  { "subscribe" : [ ] }  "#.utf8)) == .success(.subscribe([])))
        #expect(SubscribeRequest.parse(Array(#"{"subscribe":["a","a"]}"#.utf8)) == .success(.subscribe(["a"])))
    }

    @Test func refusesEverythingElse() {
        for text in [#"{"subscribe":"market"}"#, #"{"subscribe":[1]}"#, #"{"hello":1}"#, #"[]"#, #"{"subscribe":[],"x":1}"#] {
            #expect(SubscribeRequest.parse(Array(text.utf8)) == .failure(.unknownRequest), "\(text)")
        }
        for text in ["garbage", "{", #"{"subscribe":["a"]} trailing"#, "\u{01}", #"{"a":"\#u{01}"}"#] {
            guard case .failure(.invalidJSON) = SubscribeRequest.parse(Array(text.utf8)) else {
                Issue.record("\(text) should be invalid JSON")
                continue
            }
        }
        #expect(SubscribeRequest.parse([0xFF, 0xFE]) != .success(.subscribe([])))
    }

    @Test func replyLines() {
        #expect(String(decoding: SubscribeRequest.okLine(upstreams: ["a", "b\"c"]), as: UTF8.self) == #"{"ok":"subscribe","upstreams":["a","b\"c"]}"# + "\n")
        #expect(String(decoding: SubscribeRequest.errorLine("bad \"x\""), as: UTF8.self) == #"{"error":"bad \"x\""}"# + "\n")
    }

    @Test func miniJSONValues() throws {
        let v = try MiniJSON.parse(Array(#"{"a":[1,-2.5e3,true,false,null],"s":"\u00e9\ud83d\ude00\n\/"}"#.utf8))
        #expect(v["a"] == .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]))
        #expect(v["s"] == .string("é😀\n/"))
        #expect(throws: MiniJSON.ParseError.self) { try MiniJSON.parse(Array("01".utf8)) }
        #expect(throws: MiniJSON.ParseError.self) { try MiniJSON.parse(Array(String(repeating: "[", count: 100).utf8)) }
        // An unpaired surrogate escape: Foundation's parser refuses it (RFC 8259 §8.2 leaves it open; the
        // hand-written reader made it U+FFFD). A subscriber sending one gets an "invalid JSON" reply.
        #expect(throws: MiniJSON.ParseError.self) { try MiniJSON.parse(Array(#""\ud800x""#.utf8)) }
        #expect(try MiniJSON.parse(Array("[true,1,0]".utf8)) == .array([.bool(true), .number(1), .number(0)]))
    }

    @Test func tailPassesLinesThroughAndRepliesToStderr() {
        var f = TailLineFormatter(raw: false, upstreams: [])
        let line = #"{"upstream":"a","epoch":1,"seq":1,"ts":"x","type":"text","data":"hi"}"#
        do { let result = f.handle(ArraySlice(line.utf8)); #expect(result.stdout == Array((line + "\n").utf8)) }
        do { let result = f.handle(ArraySlice(#"{"error":"invalid JSON"}"#.utf8)); #expect(result.stderr != nil) }
        do { let result = f.handle(ArraySlice("plain raw line".utf8)); #expect(result.stdout == Array("plain raw line\n".utf8)) }
    }

    @Test func tailRawDecodesDataAndSendsEventsToStderr() {
        var f = TailLineFormatter(raw: true, upstreams: [])
        do { let result = f.handle(ArraySlice(#"{"upstream":"a","epoch":1,"seq":1,"ts":"x","type":"text","data":"{\"p\":1}"}"#.utf8)); #expect(result.stdout == Array("{\"p\":1}\n".utf8)) }
        do { let result = f.handle(ArraySlice(#"{"upstream":"a","epoch":1,"seq":2,"ts":"x","type":"binary","data":"AAH/"}"#.utf8)); #expect(result.stdout == [0, 1, 0xFF, 0x0A]) }
        let gap = f.handle(ArraySlice(#"{"event":"gap","upstream":"a","dropped":3,"first_seq":1,"last_seq":3,"ts":"x"}"#.utf8))
        #expect(gap.stdout == nil && gap.stderr != nil)
    }

    @Test func tailFiltersOtherUpstreamsAndFailsOnRejectedSubscription() {
        var f = TailLineFormatter(raw: false, upstreams: ["a"])
        do { let result = f.handle(ArraySlice(#"{"upstream":"b","epoch":1,"seq":1,"ts":"x","type":"text","data":""}"#.utf8)); #expect(result == .init()) }
        let rejected = f.handle(ArraySlice(#"{"error":"unknown upstream \"zz\""}"#.utf8))
        #expect(rejected.failure?.exitCode == 64)
        var g = TailLineFormatter(raw: false, upstreams: [])
        _ = g.handle(ArraySlice(#"{"error":"permission denied: uid 5 is not allowed on this socket"}"#.utf8))
        #expect(g.refusal != nil)
    }

    @Test func tailExplainsConnectFailures() {
        #expect(throws: TailClient.Failure.self) { try TailClient.connect("/nonexistent/dir/sock") }
        do {
            _ = try TailClient.connect("/nonexistent/dir/sock")
        } catch {
            #expect(error.exitCode == 69)
            #expect(error.description.contains("/nonexistent/dir/sock"))
        }
        #expect(TailClient.explain(ENOENT, path: "/p", purpose: "is wsrelay running?").hasPrefix("no socket at /p: is wsrelay running"))
        #expect(TailClient.explain(EACCES, path: "/p", purpose: "").hasPrefix("permission denied on /p"))
        #expect(String(decoding: TailClient.subscribeLine(["a", "b"]), as: UTF8.self) == #"{"subscribe":["a","b"]}"# + "\n")
    }

    @Test func socketActivationEnvironment() {
        let pid = getpid()
        let sockets = SocketActivation.inheritedSockets(
            environment: ["LISTEN_PID": "\(pid)", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "subscribe:control"], pid: pid)
        #expect(sockets == [.init(fd: 3, name: "subscribe"), .init(fd: 4, name: "control")])
        #expect(SocketActivation.inheritedSockets(environment: ["LISTEN_PID": "1", "LISTEN_FDS": "1"], pid: pid).isEmpty)
        #expect(SocketActivation.inheritedSockets(environment: [:], pid: pid).isEmpty)
    }

    @Test func peerCredentialRules() {
        let peer = PeerCredentials(pid: 10, uid: 1000, gid: 100)
        #expect(peer.isAllowed(uids: [], gids: []))
        #expect(peer.isAllowed(uids: [1000], gids: []))
        #expect(peer.isAllowed(uids: [1], gids: [100]))
        #expect(!peer.isAllowed(uids: [1], gids: [2]))
    }
}

import Glibc

import Testing
@testable import WSRelayCore

/// The FDNAMEs of the file descriptor store: round trip, systemd's limits, foreign names left alone.
@Suite("file descriptor store names")
struct StoredSocketNameTests {
    @Test func roundTripAndLimits() {
        let key = StoredSocketName.sinkKey(UnixSinkSettings(path: "/run/wsrelay/feed.sock"))
        #expect(key.count == 16 && key != StoredSocketName.sinkKey(UnixSinkSettings(path: "/run/wsrelay/other.sock")))
        let names: [StoredSocketName] = [
            .listener(sink: key),
            .subscriber(sink: key, id: "1f2x3", upstreams: []),
            .subscriber(sink: key, id: "1f2x4", upstreams: ["market", "news.eu-1"]),
        ]
        for name in names {
            let text = name.fdName
            #expect(text != nil && StoredSocketName.parse(text!) == name, "\(String(describing: text))")
            // systemd's FDNAME rules: printable ASCII without ':' or spaces, at most 255.
            #expect(text!.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") })
        }
        #expect(StoredSocketName.subscriber(sink: key, id: "1", upstreams: []).fdName == "wsrelay/sub/\(key)/1/*")
        let many = (0..<40).map { "upstream-\($0)" }
        #expect(StoredSocketName.subscriber(sink: key, id: "1", upstreams: many).fdName == nil, "over 255 characters")
        #expect(StoredSocketName.parse("stream") == nil, "a .socket unit's name is not ours")
        #expect(StoredSocketName.parse("wsrelay/sub/\(key)//*") == nil)
        #expect(StoredSocketName.parse("wsrelay/other/x") == nil)
    }
}

/// The `FDNAME=` under which a unix sink's descriptors live in systemd's file descriptor store, and how the
/// next process recognises them in `LISTEN_FDNAMES`.
///
/// - `wsrelay/listen/KEY`: a listening socket the sink bound itself (one from a .socket unit is already kept
///   by systemd and is not stored again).
/// - `wsrelay/sub/KEY/ID/FILTER`: one subscriber. `FILTER` is its subscribe list, `*` for everything the
///   socket carries or upstream names joined by `,` (names are `[A-Za-z0-9_.-]`, so no escaping is needed).
///   Keeping the filter in the name keeps it with the descriptor through a crash, with no file to update;
///   a subscriber whose filter does not fit in 255 characters is not stored (it reconnects after a restart).
///
/// `KEY` identifies the sink across processes (a hash of its path or `listen_fd_name`); `ID` makes each
/// subscriber's name unique so that `FDSTOREREMOVE=1` removes exactly that one.
enum StoredSocketName: Sendable, Equatable {
    case listener(sink: String)
    case subscriber(sink: String, id: String, upstreams: [String])

    static let prefix = "wsrelay/"
    static let maximumLength = 255

    /// The name to send, or nil when it would be longer than systemd allows.
    var fdName: String? {
        let name: String
        switch self {
        case .listener(let sink):
            name = "\(Self.prefix)listen/\(sink)"
        case .subscriber(let sink, let id, let upstreams):
            name = "\(Self.prefix)sub/\(sink)/\(id)/" + (upstreams.isEmpty ? "*" : upstreams.joined(separator: ","))
        }
        return name.utf8.count <= Self.maximumLength ? name : nil
    }

    static func parse(_ name: String) -> StoredSocketName? {
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.first {
        case "listen" where parts.count == 2 && !parts[1].isEmpty:
            return .listener(sink: parts[1])
        case "sub" where parts.count == 4 && !parts[1].isEmpty && !parts[2].isEmpty && !parts[3].isEmpty:
            let upstreams = parts[3] == "*" ? [] : parts[3].split(separator: ",").map(String.init)
            return .subscriber(sink: parts[1], id: parts[2], upstreams: upstreams)
        default:
            return nil
        }
    }

    /// The sink part of the names: FNV-1a (64 bit) of what identifies a unix sink in the configuration.
    static func sinkKey(_ unix: UnixSinkSettings) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "path=\(unix.path ?? "")\nfd=\(unix.listenFDName ?? "")".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

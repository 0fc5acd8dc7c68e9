import NIOHTTP1

/// Why a connection attempt ended before the WebSocket was open, kept whole so the supervisor can act on it
/// (401 → refresh credentials, 429/503 → honour Retry-After) and status can show it.
public enum ConnectionFailure: Error, Sendable, CustomStringConvertible {
    /// TCP connect or TLS failed, or `connect_timeout` passed.
    case connect(String)
    /// The server answered the upgrade request with something other than 101.
    case upgradeRejected(status: Int, reason: String, headers: [(String, String)])
    /// 101 came, but the handshake was not a valid WebSocket handshake (bad Sec-WebSocket-Accept, unknown
    /// subprotocol), or `handshake_timeout` passed.
    case handshake(String)

    public var description: String {
        switch self {
        case .connect(let text): return text
        case .upgradeRejected(let status, let reason, _): return "HTTP \(status) \(reason)".trimmingTrailingSpace
        case .handshake(let text): return "handshake: \(text)"
        }
    }

    public var httpStatus: Int? {
        if case .upgradeRejected(let status, _, _) = self { return status }
        return nil
    }

    public func header(_ name: String) -> String? {
        guard case .upgradeRejected(_, _, let headers) = self else { return nil }
        return headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

extension ConnectionFailure: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.connect(let a), .connect(let b)), (.handshake(let a), .handshake(let b)):
            return a == b
        case (.upgradeRejected(let s1, let r1, let h1), .upgradeRejected(let s2, let r2, let h2)):
            return s1 == s2 && r1 == r2 && h1.elementsEqual(h2) { $0 == $1 }
        default:
            return false
        }
    }
}

extension String {
    var trimmingTrailingSpace: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// One message a local program asks wsrelay to send on an upstream's shared connection ("the way back"):
/// from a subscriber of a unix sink with `allow_send = true`, or `wsrelay send` on the control socket.
///
/// `persist` also adds the message to the upstream's subscribe list for every later connect (kept in
/// `state_dir`, see `PersistedSendStore`).
public struct UpstreamSend: Sendable, Equatable {
    public var upstream: String
    public var message: OutgoingMessage
    public var persist: Bool

    public init(upstream: String, message: OutgoingMessage, persist: Bool = false) {
        self.upstream = upstream
        self.message = message
        self.persist = persist
    }

    /// Largest payload accepted (text as UTF-8, binary decoded). Requests arrive as lines of at most 64 KiB;
    /// this keeps well inside that and inside any server's frame limits we have seen for control messages.
    public static let maximumSize = 32 * 1024

    /// How many messages one upstream's persisted list may hold.
    public static let maximumPersisted = 64

    public var size: Int { message.size }
}

extension OutgoingMessage {
    /// Payload bytes (UTF-8 for text).
    public var size: Int {
        switch self {
        case .text(let text): return text.utf8.count
        case .binary(let bytes): return bytes.count
        }
    }

    /// For status and replies: the text itself, or `binary:` and its base64.
    public var display: String {
        switch self {
        case .text(let text): return text
        case .binary(let bytes): return "binary:" + Base64.encode(bytes)
        }
    }
}

/// What happened to an accepted send.
public enum UpstreamSendOutcome: Sendable, Equatable {
    /// Written to the open connection (handed to the kernel in order with everything else we send).
    case sent
    /// Not connected, but persisted: it goes out with the subscribe list at the next connect.
    case persistedForNextConnect
}

/// Why a send was refused; the description is the error line a client reads.
public enum UpstreamSendRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownUpstream(name: String, known: [String])
    /// The unix sink does not carry this upstream (`upstreams = [...]` of the sink).
    case notCarried(name: String, carried: [String])
    /// The unix sink has `allow_send = false`.
    case sendNotAllowed
    case tooLarge(size: Int, limit: Int)
    /// Not open (phase as in status); a message that is not persisted is not queued.
    case notConnected(name: String, phase: String)
    case persistedListFull(name: String, limit: Int)
    case persistFailed(String)
    /// The daemon is starting or stopping and has no upstreams to hand the message to.
    case unavailable

    public var description: String {
        switch self {
        case .unknownUpstream(let name, let known):
            return "unknown upstream \"\(name)\"; known: \(known.isEmpty ? "none" : known.joined(separator: ", "))"
        case .notCarried(let name, let carried):
            return "upstream \"\(name)\" is not carried by this socket; it carries: \(carried.joined(separator: ", "))"
        case .sendNotAllowed:
            return "send is not allowed on this socket (allow_send = false)"
        case .tooLarge(let size, let limit):
            return "message too large: \(size) bytes, at most \(limit)"
        case .notConnected(let name, let phase):
            return "\(name) is not connected (\(phase)); not queued: send again once it is open, or use persist"
        case .persistedListFull(let name, let limit):
            return "the persisted list of \(name) is full (\(limit) messages); unsend one first"
        case .persistFailed(let detail):
            return "could not persist: \(detail)"
        case .unavailable:
            return "the daemon is not running its upstreams (starting or stopping)"
        }
    }
}

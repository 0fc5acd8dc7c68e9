import NIOCore

/// One complete WebSocket message as received from an upstream, stamped with where it stands in that
/// upstream's history.
///
/// `seq` grows by one per message for the life of the process, across reconnects, and `epoch` is the
/// connection number: together they let a consumer see exactly what it may have missed. The payload is the
/// ByteBuffer NIO read it into; it is shared, not copied, by every sink that wants it.
public struct ReceivedMessage: Sendable {
    public enum Kind: Sendable, Equatable {
        case text, binary
    }

    public var upstream: String
    public var epoch: UInt64
    public var seq: UInt64
    public var receivedAt: WallClockTime
    public var kind: Kind
    public var payload: ByteBuffer

    public init(upstream: String, epoch: UInt64, seq: UInt64, receivedAt: WallClockTime, kind: Kind, payload: ByteBuffer) {
        self.upstream = upstream
        self.epoch = epoch
        self.seq = seq
        self.receivedAt = receivedAt
        self.kind = kind
        self.payload = payload
    }
}

/// What flows from upstreams to sinks: messages, and the connection events a sink with `events = true`
/// records so consumers know when data may be missing.
public enum RelayEvent: Sendable {
    case message(ReceivedMessage)
    /// A connection of `upstream` opened; messages of this epoch follow.
    case connected(upstream: String, epoch: UInt64, at: WallClockTime)
    /// The connection of that epoch ended. `code` is the close code (1006 when the TCP connection dropped
    /// without a close frame).
    case disconnected(upstream: String, epoch: UInt64, code: UInt16, reason: String, at: WallClockTime)

    public var upstream: String {
        switch self {
        case .message(let m): return m.upstream
        case .connected(let u, _, _), .disconnected(let u, _, _, _, _): return u
        }
    }
}

import NIOConcurrencyHelpers
import NIOCore

/// Everything the simulator saw, for tests to assert on: who connected with which headers, what they sent,
/// when they pinged, how they closed.
public final class SimulatorRecorder: Sendable {
    public struct Connection: Sendable {
        public var id: Int
        public var path: String
        public var headers: [(String, String)]
        public var accepted: Bool
        public var status: Int
        public var textMessages: [String] = []
        public var binaryMessages: [[UInt8]] = []
        public var pings: [ContinuousClock.Instant] = []
        public var pingPayloads: [[UInt8]] = []
        public var pongs = 0
        public var messagesSent = 0
        public var closeCodeReceived: UInt16?
        public var closed = false
        /// When the upgrade request arrived (before the 101 was sent), so it orders correctly against the
        /// close of another connection even across event loops.
        public var openedAt: ContinuousClock.Instant
        /// When the server saw the TCP connection end.
        public var closedAt: ContinuousClock.Instant?

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    private let state = NIOLockedValueBox<[Connection]>([])
    /// Server-wide count of data messages sent, across every connection: message `n` carries `"n":n`.
    private let sent = NIOLockedValueBox(0)

    public init() {}

    public var connections: [Connection] { state.withLockedValue { $0 } }
    public var acceptedConnections: [Connection] { connections.filter(\.accepted) }
    public var totalSent: Int { sent.withLockedValue { $0 } }

    func add(path: String, headers: [(String, String)], accepted: Bool, status: Int,
             openedAt: ContinuousClock.Instant = .now) -> Int {
        state.withLockedValue { list in
            list.append(Connection(id: list.count, path: path, headers: headers, accepted: accepted, status: status,
                                   openedAt: openedAt))
            return list.count - 1
        }
    }

    func update(_ id: Int, _ body: (inout Connection) -> Void) {
        state.withLockedValue { body(&$0[id]) }
    }

    /// Reserves the next `n` server-wide message numbers; returns the first.
    func nextNumbers(_ n: Int) -> Int {
        sent.withLockedValue { value in
            let first = value + 1
            value += n
            return first
        }
    }
}

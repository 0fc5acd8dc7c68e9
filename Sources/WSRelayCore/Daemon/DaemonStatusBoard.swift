import NIOConcurrencyHelpers

/// The few numbers `STATUS=` shows, updated by the parts as they change and read by the status reporter.
///
/// Parts write here instead of the reporter polling them, so an idle daemon does not wake up to compute a
/// status nobody changed; every update also wakes the reporter so a state change is shown at once.
public final class DaemonStatusBoard: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var upstreamsConfigured = 0
        public var upstreamsConnected = 0
        public var messages: UInt64 = 0
        public var subscribers = 0
        /// The worst current problem, named first in the line (e.g. "market: 401 refresh failed").
        public var problems: [String] = []
        /// Sinks that cannot deliver right now (e.g. "jetstream nats://…/x.{upstream}: disconnected").
        public var sinkProblems: [String] = []
    }

    private let state = NIOLockedValueBox(Snapshot())
    /// Every upstream's traffic counters; the message total is read from them, not counted a second time.
    public let traffic = UpstreamTrafficBook()
    private let changes: AsyncStream<Void>.Continuation
    public let changeStream: AsyncStream<Void>

    public init() {
        (changeStream, changes) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func update(_ body: (inout Snapshot) -> Void) {
        state.withLockedValue { body(&$0) }
        changes.yield()
    }

    /// The numbers now; `messages` from the upstreams' own counters (which change on every message and so
    /// never wake the reporter themselves).
    public var snapshot: Snapshot {
        var snapshot = state.withLockedValue { $0 }
        snapshot.messages = traffic.totalMessages
        return snapshot
    }

    public func finish() { changes.finish() }

    /// One line, worst problem first: "1/3 upstreams down (market: 401); 2 subscribers, 15234 messages".
    public static func line(_ s: Snapshot) -> String {
        let down = s.upstreamsConfigured - s.upstreamsConnected
        var text: String
        if !s.problems.isEmpty {
            text = "\(down)/\(s.upstreamsConfigured) upstreams down (\(s.problems.joined(separator: "; ")))"
        } else {
            text = "\(s.upstreamsConnected)/\(s.upstreamsConfigured) upstreams connected"
        }
        text += ", \(s.messages) messages, \(s.subscribers) subscriber\(s.subscribers == 1 ? "" : "s")"
        if !s.sinkProblems.isEmpty {
            // A sink that cannot deliver loses or holds back data: named before everything else.
            let count = s.sinkProblems.count
            text = "\(count) sink\(count == 1 ? "" : "s") failing (\(s.sinkProblems.joined(separator: "; "))); " + text
        }
        return text
    }
}

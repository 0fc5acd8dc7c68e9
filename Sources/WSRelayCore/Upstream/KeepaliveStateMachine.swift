/// Decides when to ping one open WebSocket connection and when to give up on it.
///
/// It exists because a TCP connection can die silently (NAT timeout, dead peer, half-open socket): without
/// our own pings and deadlines an upstream could sit "open" forever while delivering nothing. Keeping the
/// rules in a value type — no timers, no channel — lets the NIO shell stay a thin translator and lets tests
/// check exact instants.
///
/// One machine per connection (per epoch). The shell feeds events with the current instant and performs
/// the returned actions; after every event it (re)arms exactly one timer at `Output.nextDeadline`
/// (or none when it is `nil`) and calls `handle(.timerFired(now:))` when it fires.
///
/// Rules:
/// - A protocol ping goes out every `pingInterval` from `opened`, whether or not data is flowing
///   (`pingInterval <= 0` turns pings off). When `appPing` is set, that text message is sent right after
///   each protocol ping, for servers that only count application traffic as liveness; its reply is not
///   matched (use `idleTimeout` for that).
/// - Each ping carries an 8-byte payload, `"wsr"` + a 40-bit big-endian counter, so a pong is matched to
///   its ping. A matching pong records the RTT and clears that ping's deadline (and those of older pings:
///   RFC 6455 lets a peer answer only the most recent ping). Unsolicited or stale pongs are ignored.
/// - The oldest unanswered ping must be answered within `pongTimeout` of being sent, else the connection
///   is declared dead ("no pong within 10s").
/// - With `idleTimeout`, the connection is declared dead when no frame at all (data or control, pongs
///   included) arrived for that long ("no frame for 60s").
/// - Once dead, the machine is inert.
public struct KeepaliveStateMachine: Sendable {
    /// The knobs, taken from `UpstreamSettings`.
    public struct Settings: Sendable, Equatable {
        public var pingInterval: Duration
        public var pongTimeout: Duration
        public var appPing: String?
        public var idleTimeout: Duration?

        public init(
            pingInterval: Duration = .seconds(30),
            pongTimeout: Duration = .seconds(10),
            appPing: String? = nil,
            idleTimeout: Duration? = nil
        ) {
            self.pingInterval = pingInterval
            self.pongTimeout = pongTimeout
            self.appPing = appPing
            self.idleTimeout = idleTimeout
        }

        public init(_ upstream: UpstreamSettings) {
            self.init(
                pingInterval: upstream.pingInterval,
                pongTimeout: upstream.pongTimeout,
                appPing: upstream.appPing,
                idleTimeout: upstream.idleTimeout
            )
        }
    }

    /// Why a connection was given up; `description` is the log / status text.
    public enum DeathReason: Sendable, Equatable, Hashable, CustomStringConvertible {
        /// A ping was not answered within the pong timeout (the associated value).
        case pongTimeout(Duration)
        /// No frame arrived for the idle timeout (the associated value).
        case idleTimeout(Duration)

        public var description: String {
            switch self {
            case .pongTimeout(let d): return "no pong within \(UpstreamState.describe(d))"
            case .idleTimeout(let d): return "no frame for \(UpstreamState.describe(d))"
            }
        }
    }

    public enum Event: Sendable, Equatable {
        /// The upgrade completed; starts the ping schedule and the idle clock.
        case opened(now: ContinuousClock.Instant)
        /// Any frame arrived (data or control).
        case frameReceived(now: ContinuousClock.Instant)
        /// A pong arrived with this application data. Also counts as a received frame.
        case pongReceived(payload: [UInt8], now: ContinuousClock.Instant)
        /// The timer armed at the last `nextDeadline` fired.
        case timerFired(now: ContinuousClock.Instant)
        /// Check the peer now instead of at the next slot (after a suspend/resume the connection is likely
        /// dead and nobody knows yet): a ping at once, then the usual schedule from here.
        case pingNow(now: ContinuousClock.Instant)
    }

    public enum Action: Sendable, Equatable {
        case sendPing(payload: [UInt8])
        case sendAppPing(String)
        /// Close the connection without further ado; it is not coming back.
        case declareDead(reason: DeathReason)
        case recordRTT(Duration)
    }

    /// What to do now, and when to wake the machine next (`nil`: no timer).
    public struct Output: Sendable, Equatable {
        public var actions: [Action]
        public var nextDeadline: ContinuousClock.Instant?

        public init(actions: [Action] = [], nextDeadline: ContinuousClock.Instant?) {
            self.actions = actions
            self.nextDeadline = nextDeadline
        }
    }

    /// The first bytes of every ping payload we send.
    public static let payloadPrefix: [UInt8] = Array("wsr".utf8)

    /// The payload of ping number `counter`: "wsr" + the low 40 bits of `counter`, big-endian.
    public static func pingPayload(counter: UInt64) -> [UInt8] {
        payloadPrefix + (0..<5).reversed().map { UInt8(truncatingIfNeeded: counter >> (UInt64($0) * 8)) }
    }

    private struct SentPing: Sendable, Equatable {
        var payload: [UInt8]
        var sentAt: ContinuousClock.Instant
    }

    private enum Phase: Sendable, Equatable {
        case notOpen, open, dead
    }

    public let settings: Settings
    private var phase: Phase = .notOpen
    private var counter: UInt64 = 0
    private var nextPingAt: ContinuousClock.Instant?
    /// Unanswered pings, oldest first.
    private var outstanding: [SentPing] = []
    private var lastFrameAt: ContinuousClock.Instant?

    public init(settings: Settings) {
        self.settings = settings
    }

    /// True once the machine declared the connection dead.
    public var isDead: Bool { phase == .dead }

    /// The number of pings sent so far.
    public var pingsSent: UInt64 { counter }

    /// The instant the shell's single timer must be armed for, or `nil` for none.
    public var nextDeadline: ContinuousClock.Instant? {
        guard phase == .open else { return nil }
        return [nextPingAt, pongDeadline, idleDeadline].compactMap { $0 }.min()
    }

    public mutating func handle(_ event: Event) -> Output {
        var actions: [Action] = []
        switch event {
        case .opened(let now):
            guard phase == .notOpen else { break }
            phase = .open
            lastFrameAt = now
            nextPingAt = pingsEnabled ? now + settings.pingInterval : nil

        case .frameReceived(let now):
            guard phase == .open else { break }
            lastFrameAt = now

        case .pongReceived(let payload, let now):
            guard phase == .open else { break }
            lastFrameAt = now
            if let index = outstanding.firstIndex(where: { $0.payload == payload }) {
                actions.append(.recordRTT(now - outstanding[index].sentAt))
                outstanding.removeSubrange(...index)
            }

        case .timerFired(let now):
            guard phase == .open else { break }
            if let deadline = pongDeadline, now >= deadline {
                return die(.pongTimeout(settings.pongTimeout))
            }
            if let deadline = idleDeadline, now >= deadline, let idle = settings.idleTimeout {
                return die(.idleTimeout(idle))
            }
            if let due = nextPingAt, now >= due {
                ping(now: now, into: &actions)
                // Keep the schedule on the grid from `opened`; skip slots missed by a late wake-up.
                var next = due + settings.pingInterval
                while next <= now { next += settings.pingInterval }
                nextPingAt = next
            }

        case .pingNow(let now):
            guard phase == .open, pingsEnabled else { break }
            ping(now: now, into: &actions)
            nextPingAt = now + settings.pingInterval
        }
        return Output(actions: actions, nextDeadline: nextDeadline)
    }

    private mutating func ping(now: ContinuousClock.Instant, into actions: inout [Action]) {
        counter &+= 1
        let payload = Self.pingPayload(counter: counter)
        outstanding.append(SentPing(payload: payload, sentAt: now))
        actions.append(.sendPing(payload: payload))
        if let text = settings.appPing {
            actions.append(.sendAppPing(text))
        }
    }

    private var pingsEnabled: Bool { settings.pingInterval > .zero }

    private var pongDeadline: ContinuousClock.Instant? {
        outstanding.first.map { $0.sentAt + settings.pongTimeout }
    }

    private var idleDeadline: ContinuousClock.Instant? {
        guard let idle = settings.idleTimeout, idle > .zero, let last = lastFrameAt else { return nil }
        return last + idle
    }

    private mutating func die(_ reason: DeathReason) -> Output {
        phase = .dead
        nextPingAt = nil
        outstanding = []
        return Output(actions: [.declareDead(reason: reason)], nextDeadline: nil)
    }
}

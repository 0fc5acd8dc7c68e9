/// A point-in-time picture of one upstream, for `wsrelay status`, the control socket and metrics.
///
/// It exists so readers never reach into the live `UpstreamSupervisor` (which is owned by one event loop)
/// or the connection: the shell (`UpstreamDriver`) copies this `Sendable` value out and hands it across
/// threads. The supervisor fills the supervision fields (`UpstreamSupervisor.status`); the driver fills the
/// traffic fields (`messages`, `bytes`, `lastMessageAt`, `lastPongRTT`) before publishing it.
///
/// Instants are `ContinuousClock` instants, the same clock the state machines are driven with; a renderer
/// turns them into "3m ago" / "in 5s" relative to `ContinuousClock.now`.
public struct UpstreamState: Sendable, Equatable {
    /// The coarse lifecycle stage, with the short word status output shows.
    public enum Phase: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
        case idle = "not started"
        case refreshingCredentials = "refreshing credentials"
        case connecting = "connecting"
        case open = "open"
        case backingOff = "backing off"
        case paused = "paused"
        case stopped = "stopped"
        case closing = "closing"
        case finished = "finished"

        public var description: String { rawValue }
    }

    public var name: String
    public var phase: Phase
    /// When the upstream entered its current phase.
    public var since: ContinuousClock.Instant
    /// The epoch of the most recent connect attempt (0 before the first one). See `UpstreamSupervisor`.
    public var epoch: UInt64
    /// 1-based number of the current (or next) connect try since the last stable connection.
    public var attempt: Int
    /// When the next connect attempt is due, while backing off.
    public var nextAttempt: ContinuousClock.Instant?
    public var lastCloseCode: UInt16?
    public var lastCloseReason: String?
    public var lastError: String?
    /// Connections that completed the WebSocket upgrade.
    public var connects: Int
    /// Ended connections and failed attempts by cause: a close code ("1000", "4001"), "1006" for a drop
    /// without a close frame, "pong timeout", "idle timeout", "connect error", "http <status>",
    /// "credentials", and the local causes "pause", "reconnect", "shutdown", "removed".
    public var disconnects: [String: Int]

    // Filled by the driver (`UpstreamDriver`).
    public var messages: UInt64
    public var bytes: UInt64
    public var lastMessageAt: ContinuousClock.Instant?
    public var lastPongRTT: Duration?
    /// The open connection's agreed permessage-deflate parameters (nil: uncompressed or not open).
    public var compression: PerMessageDeflateParameters?
    /// The open compressed connection's inflater counters.
    public var compressionStats: CompressionStats?

    public init(
        name: String,
        phase: Phase,
        since: ContinuousClock.Instant,
        epoch: UInt64 = 0,
        attempt: Int = 0,
        nextAttempt: ContinuousClock.Instant? = nil,
        lastCloseCode: UInt16? = nil,
        lastCloseReason: String? = nil,
        lastError: String? = nil,
        connects: Int = 0,
        disconnects: [String: Int] = [:],
        messages: UInt64 = 0,
        bytes: UInt64 = 0,
        lastMessageAt: ContinuousClock.Instant? = nil,
        lastPongRTT: Duration? = nil
    ) {
        self.name = name
        self.phase = phase
        self.since = since
        self.epoch = epoch
        self.attempt = attempt
        self.nextAttempt = nextAttempt
        self.lastCloseCode = lastCloseCode
        self.lastCloseReason = lastCloseReason
        self.lastError = lastError
        self.connects = connects
        self.disconnects = disconnects
        self.messages = messages
        self.bytes = bytes
        self.lastMessageAt = lastMessageAt
        self.lastPongRTT = lastPongRTT
    }
}

extension UpstreamState {
    /// A compact human rendering of a duration for log lines and status: "10s", "250ms", "1.5s", "60s",
    /// "2m30s", "1h" (minutes and hours only from two minutes up, where seconds stop being readable).
    static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) {
            return "-" + describe(.zero - duration)
        }
        let millis = attoseconds / 1_000_000_000_000_000
        if seconds == 0 {
            if millis > 0 { return "\(millis)ms" }
            let micros = attoseconds / 1_000_000_000_000
            return micros > 0 ? "\(micros)µs" : (attoseconds > 0 ? "<1µs" : "0s")
        }
        if seconds >= 120 && millis == 0 {
            let h = seconds / 3600, m = (seconds % 3600) / 60, s = seconds % 60
            var out = ""
            if h > 0 { out += "\(h)h" }
            if m > 0 { out += "\(m)m" }
            if s > 0 { out += "\(s)s" }
            return out
        }
        if millis == 0 { return "\(seconds)s" }
        var fraction = String(millis)
        while fraction.count < 3 { fraction = "0" + fraction }
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(seconds).\(fraction)s"
    }
}

import Logging
@testable import WSRelayCore

/// Always returns zero: the lowest possible draw.
struct UpstreamZeroRandom: RandomNumberGenerator, Sendable {
    mutating func next() -> UInt64 { 0 }
}

/// Always returns the maximum: the highest possible draw.
struct UpstreamMaxRandom: RandomNumberGenerator, Sendable {
    mutating func next() -> UInt64 { .max }
}

extension Array where Element == UpstreamSupervisor.Action {
    /// The actions without log lines, for exact comparisons.
    var upstreamNonLog: [UpstreamSupervisor.Action] {
        filter { if case .log = $0 { return false } else { return true } }
    }

    /// The instant of the (last) `scheduleTimer` among the actions.
    var upstreamTimer: ContinuousClock.Instant? {
        compactMap { if case .scheduleTimer(let at) = $0 { return at } else { return nil } }.last
    }

    var upstreamLogs: [(Logger.Level, String)] {
        compactMap { if case .log(let level, let text) = $0 { return (level, text) } else { return nil } }
    }
}

enum UpstreamFixtures {
    static let url = WebSocketURL(secure: true, host: "feed.example.com", port: 443, target: "/ws")

    static func settings(
        auth: String? = nil,
        fatal: [UInt16] = [],
        resetAfter: Duration = .seconds(60)
    ) -> UpstreamSettings {
        var s = UpstreamSettings(name: "feed", url: url)
        s.auth = auth
        s.fatalCloseCodes = fatal
        s.reconnect.resetAfter = resetAfter
        return s
    }
}

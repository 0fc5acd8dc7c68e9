import CSystemd
import Glibc

/// Tells the service manager where the daemon is in its life (READY, STATUS, RELOADING, STOPPING, WATCHDOG).
///
/// A thin wrapper over libsystemd's `sd_notify` so the protocol (NOTIFY_SOCKET, abstract sockets, credentials)
/// is implemented once, by systemd itself. When `NOTIFY_SOCKET` is unset every call is a cheap no-op, so the
/// rest of the daemon never needs to know whether it runs under systemd.
public struct SystemdNotifier: Sendable {
    public let isEnabled: Bool

    public init(environment: [String: String]) {
        self.isEnabled = !(environment["NOTIFY_SOCKET"] ?? "").isEmpty
    }

    public func send(_ assignments: String) {
        guard isEnabled else { return }
        _ = sd_notify(0, assignments)
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(Self.oneLine(status))") }
    public func status(_ text: String) { send("STATUS=\(Self.oneLine(text))") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(Self.oneLine(status))") }
    public func watchdog() { send("WATCHDOG=1") }

    /// `RELOADING=1` must carry `MONOTONIC_USEC` for `Type=notify-reload` to accept it.
    public func reloading() {
        send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())\nSTATUS=Reloading configuration")
    }

    /// The watchdog interval systemd expects pings within, if it enabled one for this process.
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    /// STATUS= is one line by protocol; a stray newline would start a new assignment.
    static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

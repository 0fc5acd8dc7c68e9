import CSystemd
import Dispatch
import Glibc
import NIOConcurrencyHelpers

/// Tells the service manager where the daemon is in its life (READY, STATUS, RELOADING, STOPPING, WATCHDOG).
///
/// Messages go out on one `SystemdNotifySocket` opened at start (so they still go out when the process is
/// out of descriptors); for an address form it does not know, libsystemd's `sd_notify`. A send blocks when
/// the manager's datagram queue is full, so every send happens on one serial queue of its own: a slow manager
/// can delay a notification but never an event loop or the shutdown. Frequent STATUS= updates are coalesced
/// to the latest. When `NOTIFY_SOCKET` is unset every call is a cheap no-op.
public final class SystemdNotifier: Sendable {
    public let isEnabled: Bool
    private let socket: SystemdNotifySocket?
    private let queue = DispatchQueue(label: "wsrelay.sd_notify")
    private let pendingStatus = NIOLockedValueBox<String?>(nil)

    public init(environment: [String: String]) {
        let value = environment["NOTIFY_SOCKET"] ?? ""
        self.isEnabled = !value.isEmpty
        self.socket = value.isEmpty ? nil : SystemdNotifySocket(notifySocket: value)
    }

    public func send(_ assignments: String) {
        guard isEnabled else { return }
        queue.async { [socket] in Self.deliver(assignments, on: socket) }
    }

    private static func deliver(_ assignments: String, on socket: SystemdNotifySocket?) {
        if let socket { socket.send(assignments) } else { _ = sd_notify(0, assignments) }
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(Self.oneLine(status))") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(Self.oneLine(status))") }
    public func watchdog() { send("WATCHDOG=1") }

    /// `EXTEND_TIMEOUT_USEC=`: the start or stop in progress may take `duration` longer from now.
    public func extendTimeout(by duration: Duration) {
        let usec = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        send("EXTEND_TIMEOUT_USEC=\(usec)")
    }

    /// Only the latest status matters; intermediate ones are dropped while a send is pending.
    public func status(_ text: String) {
        guard isEnabled else { return }
        let wasPending = pendingStatus.withLockedValue { pending -> Bool in
            defer { pending = Self.oneLine(text) }
            return pending != nil
        }
        guard !wasPending else { return }
        queue.async { [pendingStatus, socket] in
            guard let latest = pendingStatus.withLockedValue({ pending -> String? in
                defer { pending = nil }
                return pending
            }) else { return }
            Self.deliver("STATUS=\(latest)", on: socket)
        }
    }

    /// `RELOADING=1` must carry `MONOTONIC_USEC` for `Type=notify-reload` to accept it.
    public func reloading() {
        send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())\nSTATUS=Reloading configuration")
    }

    /// Waits (boundedly) until queued notifications are sent, so STOPPING=1 is not lost at exit.
    public func flush(timeout: Duration = .seconds(1)) {
        guard isEnabled else { return }
        let done = DispatchSemaphore(value: 0)
        queue.async { done.signal() }
        _ = done.wait(timeout: .now() + .milliseconds(Int(timeout.components.seconds * 1000)))
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

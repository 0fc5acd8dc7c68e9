import CSystemd
import Dispatch
import Glibc
import NIOConcurrencyHelpers

/// systemd's file descriptor store (`FileDescriptorStoreMax=` in the unit): descriptors handed to the manager
/// with `FDSTORE=1` survive a restart or a crash of this process and come back in `LISTEN_FDS` /
/// `LISTEN_FDNAMES` of the next one, until `FDSTOREREMOVE=1` or the unit is fully stopped.
///
/// wsrelay stores the listening sockets it bound itself and every subscriber connection (see
/// `StoredSocketName`), so `systemctl restart` or a crash loses no subscriber.
///
/// Enabled when the manager says the store exists: `$FDSTORE` (systemd >= 254 sets it to
/// `FileDescriptorStoreMax=`) is above zero and `NOTIFY_SOCKET` is set. Sends go through libsystemd's
/// `sd_pid_notify_with_fds` on one serial queue (it may block on a full manager queue); the descriptor is
/// duplicated first, so the caller may close its own at once, and the duplicate is closed once sent.
public final class FileDescriptorStore: Sendable {
    public let isEnabled: Bool
    /// `FileDescriptorStoreMax=`: the manager refuses descriptors beyond it.
    public let capacity: Int
    private let queue = DispatchQueue(label: "wsrelay.fdstore")
    private let handingOver = NIOLockedValueBox(false)
    private let failures = NIOLockedValueBox(0)
    private let handover = NIOLockedValueBox<CounterHandover?>(nil)

    /// The counters the previous process handed over (set at startup before the sinks open).
    public var previousCounters: CounterHandover? {
        get { handover.withLockedValue { $0 } }
        set { handover.withLockedValue { $0 = newValue } }
    }

    public static let disabled = FileDescriptorStore(environment: [:])

    public init(environment: [String: String]) {
        let capacity = environment["FDSTORE"].flatMap { Int($0) } ?? 0
        self.capacity = capacity
        self.isEnabled = capacity > 0 && !(environment["NOTIFY_SOCKET"] ?? "").isEmpty
    }

    /// `FDSTORE=1` + `FDNAME=name` with a duplicate of `fd`. Returns false (nothing sent) when disabled or
    /// the descriptor cannot be duplicated.
    @discardableResult
    public func store(_ fd: Int32, name: String) -> Bool {
        guard isEnabled else { return false }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else { return false }
        queue.async { [failures] in
            var descriptor = copy
            let rc = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=\(name)", &descriptor, 1)
            close(copy)
            if rc <= 0 { failures.withLockedValue { $0 += 1 } }
        }
        return true
    }

    /// `FDSTOREREMOVE=1` + `FDNAME=name`: the manager closes its copies of that name.
    public func remove(name: String) {
        guard isEnabled else { return }
        queue.async { _ = sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=\(name)") }
    }

    /// The process is going away (SIGTERM): descriptors closed from now on stay in the store for the next
    /// process instead of being removed.
    public func beginHandover() { handingOver.withLockedValue { $0 = true } }
    public var isHandingOver: Bool { handingOver.withLockedValue { $0 } }

    /// Sends the manager refused (for the log at exit).
    public var failedSends: Int { failures.withLockedValue { $0 } }

    /// Waits (boundedly) until everything queued has been sent, so nothing is lost at exit.
    public func flush(timeout: Duration = .seconds(2)) {
        guard isEnabled else { return }
        let done = DispatchSemaphore(value: 0)
        queue.async { done.signal() }
        _ = done.wait(timeout: .now() + .milliseconds(Int(timeout.components.seconds * 1000)))
    }
}

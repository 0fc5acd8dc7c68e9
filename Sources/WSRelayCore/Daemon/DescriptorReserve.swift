import Glibc
import Logging
import NIOConcurrencyHelpers

/// A few descriptors the daemon holds from start-up and gives up the moment it runs out of descriptors, so
/// the libraries under it always find one; while descriptors are scarce the daemon makes no new ones of its
/// own (no upstream connects, no accepts) until enough are free again.
///
/// Why: libdispatch (under Swift concurrency, signal handling and Foundation) checks its worker threads once
/// a second by opening `/proc/<tid>/stat`, and when that open fails it does not report an error — it traps
/// (`_dispatch_workq_monitor_pools`, "registered worker exited prematurely"). With every descriptor taken
/// the daemon therefore died of SIGILL (6 of 12 runs of the descriptor-exhaustion test under load, seen in
/// gdb). Releasing the reserve leaves those opens room; not connecting or accepting while scarce keeps the
/// room from being taken back by our own retries.
///
/// `RLIMIT_NOFILE` is per process, so there is one reserve per process (`process`); the daemon fills it
/// once at start. Anything that makes a descriptor reports EMFILE/ENFILE here (`exhausted`), and
/// `DescriptorWatchService` probes once a second: it notices a limit lowered under the daemon (`prlimit`)
/// and growth into the last `margin` numbers before they are all gone, and ends the scarcity once the
/// reserve and a margin can be opened again.
public final class DescriptorReserve: Sendable {
    public static let process = DescriptorReserve()

    /// Descriptors held back, and how many more must be free before the daemon makes new ones again.
    static let size = 8
    static let margin = 4
    static let highestProbedLimit = 65_536

    private struct State {
        var held: [CInt] = []
        var scarce = false
    }

    private let state = NIOLockedValueBox(State())

    /// Descriptors are short: make no new connections or subscribers of our own.
    public var isScarce: Bool { state.withLockedValue { $0.scarce } }

    /// Opens the reserve (start-up).
    public func fill() {
        state.withLockedValue { state in state.held += Self.openSpares(Self.size - state.held.count) }
    }

    /// Any thread: making a descriptor just failed with EMFILE/ENFILE. Gives the reserve up and marks
    /// descriptors scarce (`DescriptorWatchService` logs it).
    public func exhausted() {
        state.withLockedValue { state in
            for fd in state.held { close(fd) }
            state.held.removeAll()
            state.scarce = true
        }
    }

    /// Once a second (`DescriptorWatchService`). Descriptors are handed out lowest number first, so the number
    /// `margin` below the soft limit is taken only once (nearly) every lower one is: while plenty, finding it
    /// taken starts a scarcity with fewer than `margin` numbers left. While scarce: once the reserve and
    /// `margin` more can be opened and that number is free again, the reserve is kept, the rest closed, and the
    /// scarcity ends.
    public func check() {
        if isScarce {
            let opened = Self.openSpares(Self.size + Self.margin)
            guard opened.count == Self.size + Self.margin, Self.numberNearLimitIsFree(probingWith: opened[0]) != false else {
                for fd in opened { close(fd) }
                return
            }
            for fd in opened.dropFirst(Self.size) { close(fd) }
            state.withLockedValue { state in
                state.held += opened.prefix(Self.size)
                state.scarce = false
            }
            return
        }
        guard let held = state.withLockedValue({ $0.held.first }) else { return }
        if Self.numberNearLimitIsFree(probingWith: held) == false { exhausted() }
    }

    /// Up to `count` descriptors on /dev/null (fewer when they run out).
    private static func openSpares(_ count: Int) -> [CInt] {
        var opened: [CInt] = []
        while opened.count < count {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { break }
            opened.append(fd)
        }
        return opened
    }

    /// Whether the number `margin` below the soft limit is free (asked by duplicating `descriptor` onto the
    /// lowest free number from there); nil when not asked.
    private static func numberNearLimitIsFree(probingWith descriptor: CInt) -> Bool? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let soft = Int(clamping: limit.rlim_cur)
        // Asking for a number near the limit makes the kernel grow the descriptor table that far (8 bytes a
        // slot, kept): fine up to the unit's LimitNOFILE=65536; above that the first EMFILE is the signal.
        guard soft <= highestProbedLimit else { return nil }
        let number = CInt(max(3, soft - margin))
        let probe = fcntl(descriptor, F_DUPFD_CLOEXEC, number)
        if probe >= 0 { close(probe) }
        return probe == number
    }

    /// EMFILE (this process) or ENFILE (the whole system).
    public static func isExhaustion(_ errno: CInt) -> Bool { errno == EMFILE || errno == ENFILE }
}

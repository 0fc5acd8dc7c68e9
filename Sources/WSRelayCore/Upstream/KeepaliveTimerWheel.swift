import NIOConcurrencyHelpers
import NIOCore

/// Coarse deadlines for the keepalive of every upstream connection on one event loop: a hashed timer wheel
/// of 100 ms slots, driven by a single NIO timer per loop.
///
/// Why not one NIO timer per connection: with 10,000 idle upstreams NIO's timer heap held ~20,000 entries,
/// and every ping cycle scheduled two of them and cancelled one (NIO cancels with a linear search of the
/// heap), which was 21 % of the daemon's idle CPU (bench/RESULTS.md, "Where the idle CPU goes"). Keepalive
/// deadlines are seconds apart and may run up to one slot late, so here an insert is an append to a slot's
/// array and there is no cancel at all: an owner that no longer wants a deadline ignores it when it runs
/// (`UpstreamDriver` checks a generation number), and the entry is dropped then.
///
/// The NIO timer is armed only while entries exist, at the next non-empty slot, so an idle daemon with a few
/// upstreams wakes as rarely as before.
// @unchecked Sendable: all mutable state is touched only on `loop` (every entry point preconditions it);
// the type is shared through `on(_:)`'s registry, which hands each loop its own wheel.
final class KeepaliveTimerWheel: @unchecked Sendable {
    /// The slot length and how many slots make one lap (1024 × 100 ms ≈ 102 s, longer than most ping
    /// intervals, so most entries run on their first lap); tests use other values.
    let slotNanoseconds: Int64
    let slotCount: Int64

    private struct Entry {
        /// The absolute slot number (uptime / slot length) in which it runs; a slot's array also holds entries
        /// of later laps around the wheel.
        var slot: Int64
        var body: () -> Void
    }

    let loop: any EventLoop
    private var slots: [[Entry]]
    private var entries = 0
    /// Every entry of this slot and before has run.
    private var processedThrough: Int64
    private var wake: Scheduled<Void>?
    private var wakeSlot: Int64?

    private static let registry = NIOLockedValueBox<[ObjectIdentifier: KeepaliveTimerWheel]>([:])

    /// The wheel of `loop` (made on first use). The registry holds the loop itself, so an identifier is
    /// never reused by another loop while its entry exists.
    static func on(_ loop: any EventLoop) -> KeepaliveTimerWheel {
        registry.withLockedValue { wheels in
            if let wheel = wheels[ObjectIdentifier(loop)] { return wheel }
            let wheel = KeepaliveTimerWheel(loop: loop)
            wheels[ObjectIdentifier(loop)] = wheel
            return wheel
        }
    }

    init(loop: any EventLoop, slotNanoseconds: Int64 = 100_000_000, slotCount: Int64 = 1024) {
        self.loop = loop
        self.slotNanoseconds = slotNanoseconds
        self.slotCount = slotCount
        slots = Array(repeating: [], count: Int(slotCount))
        processedThrough = Self.nanoseconds(.now()) / slotNanoseconds
    }

    /// Whether the NIO timer is armed (only while entries exist).
    var isArmed: Bool {
        loop.preconditionInEventLoop()
        return wake != nil
    }

    /// Runs `body` on the loop at `deadline` or up to one slot (100 ms) later.
    func schedule(at deadline: NIODeadline, _ body: @escaping () -> Void) {
        loop.preconditionInEventLoop()
        // The first slot that ends at or after the deadline, and never one that has already run.
        let wanted = (Self.nanoseconds(deadline) + slotNanoseconds - 1) / slotNanoseconds
        let slot = max(processedThrough + 1, wanted)
        slots[index(slot)].append(Entry(slot: slot, body: body))
        entries += 1
        if wakeSlot.map({ slot < $0 }) ?? true { arm(at: slot) }
    }

    private func slot(containing deadline: NIODeadline) -> Int64 {
        Self.nanoseconds(deadline) / slotNanoseconds
    }

    /// Uptime nanoseconds, capped far below overflow (`NIODeadline.distantFuture` is `UInt64.max`).
    private static func nanoseconds(_ deadline: NIODeadline) -> Int64 {
        Int64(min(deadline.uptimeNanoseconds, UInt64(Int64.max / 4)))
    }

    private func index(_ slot: Int64) -> Int { Int(slot % slotCount) }

    private func arm(at slot: Int64) {
        wake?.cancel()
        wakeSlot = slot
        let deadline = NIODeadline.uptimeNanoseconds(UInt64(slot * slotNanoseconds))
        wake = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in run() }
    }

    /// Runs every entry due by now (a late wake-up catches up on all the slots it missed), then re-arms.
    private func run() {
        wake = nil
        wakeSlot = nil
        let now = slot(containing: .now())
        var due: [() -> Void] = []
        if now > processedThrough {
            // More than one lap late: every slot's array is visited once, which covers every entry.
            let span = min(now - processedThrough, slotCount)
            for step in 1...span {
                let index = index(processedThrough + step)
                guard !slots[index].isEmpty else { continue }
                slots[index].removeAll { entry in
                    guard entry.slot <= now else { return false }
                    due.append(entry.body)
                    return true
                }
            }
            processedThrough = now
            entries -= due.count
        }
        for body in due { body() }
        // A body may have armed a later slot than one still occupied: the earliest occupied slot wins.
        if let next = nextOccupiedSlot(), next != wakeSlot { arm(at: next) }
    }

    /// The first slot after `processedThrough` whose array is not empty (its entries may be of a later lap:
    /// then that wake-up finds nothing due and re-arms).
    private func nextOccupiedSlot() -> Int64? {
        guard entries > 0 else { return nil }
        for step in 1...slotCount where !slots[index(processedThrough + step)].isEmpty {
            return processedThrough + step
        }
        return nil
    }
}

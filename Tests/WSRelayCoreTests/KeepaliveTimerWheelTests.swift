import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The keepalive deadlines' wheel on a real event loop: nothing runs before its deadline, everything runs,
/// in deadline order, also entries several laps ahead and entries armed from inside a running one.
@Suite("KeepaliveTimerWheel", .mayBlock)
struct KeepaliveTimerWheelTests {
    /// What ran: the entry's label, its deadline and when it ran.
    private final class Journal: Sendable {
        private let box = NIOLockedValueBox<[(label: String, deadline: NIODeadline, ranAt: NIODeadline)]>([])
        func note(_ label: String, _ deadline: NIODeadline) { box.withLockedValue { $0.append((label, deadline, .now())) } }
        var entries: [(label: String, deadline: NIODeadline, ranAt: NIODeadline)] { box.withLockedValue { $0 } }
    }

    @Test("entries run at or after their deadline, in deadline order (slot by slot), also several laps ahead; a past deadline runs at the next slot")
    func runsEverythingInOrderAndNeverEarly() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        // 10 ms slots, 4 per lap: a deadline 200 ms away is five laps ahead.
        let wheel = KeepaliveTimerWheel(loop: loop, slotNanoseconds: 10_000_000, slotCount: 4)
        let journal = Journal()
        // In different slots, so their order is defined (within one slot, entries run in the order armed).
        let offsets: [Int64] = [200, 25, 45, 120, 75, 160]
        try await loop.submit {
            let now = NIODeadline.now()
            for (index, offset) in offsets.enumerated() {
                let deadline = now + .milliseconds(offset)
                wheel.schedule(at: deadline) { journal.note("e\(index)", deadline) }
            }
            let past = now - .milliseconds(30)
            wheel.schedule(at: past) { journal.note("past", past) }
        }.get()
        #expect(await waitUntil { journal.entries.count == offsets.count + 1 })
        #expect(journal.entries.first?.label == "past")
        let entries = journal.entries.filter { $0.label != "past" }
        #expect(entries.allSatisfy { $0.ranAt >= $0.deadline }, "an entry ran before its deadline")
        let deadlines = entries.map(\.deadline)
        #expect(deadlines == deadlines.sorted(), "not in deadline order: \(entries.map(\.label))")
        try await group.shutdownGracefully()
    }

    @Test("an entry armed by a running entry runs too; a wheel left empty arms no timer")
    func entriesArmedFromAnEntryRun() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let wheel = KeepaliveTimerWheel(loop: loop, slotNanoseconds: 10_000_000, slotCount: 8)
        let journal = Journal()
        try await loop.submit {
            let first = NIODeadline.now() + .milliseconds(30)
            wheel.schedule(at: first) {
                journal.note("first", first)
                let second = NIODeadline.now() + .milliseconds(100)  // beyond the lap of 80 ms
                wheel.schedule(at: second) { journal.note("second", second) }
            }
        }.get()
        #expect(await waitUntil { journal.entries.count == 2 })
        #expect(journal.entries.map(\.label) == ["first", "second"])
        #expect(journal.entries.allSatisfy { $0.ranAt >= $0.deadline })
        #expect(try await loop.submit { wheel.isArmed }.get() == false)
        try await group.shutdownGracefully()
    }

    @Test("one wheel per loop")
    func oneWheelPerLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        #expect(KeepaliveTimerWheel.on(loops[0]) === KeepaliveTimerWheel.on(loops[0]))
        #expect(KeepaliveTimerWheel.on(loops[0]) !== KeepaliveTimerWheel.on(loops[1]))
        try await group.shutdownGracefully()
    }
}

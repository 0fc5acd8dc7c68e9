import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Every running upstream, as one service whose membership a reload changes while the daemon runs.
///
/// Each upstream runs as a child task of this service's `run()`, not as a service of the daemon's
/// `ServiceGroup` (nor of a nested group of its own): a reload must add and remove upstreams without a
/// restart, and on shutdown they must all start their closing handshakes at once (a service group stops its
/// services one after another, so one stalled server would eat the shutdown budget of every upstream behind
/// it). Child tasks inherit the daemon's graceful shutdown, which `UpstreamService.run` answers; removal goes
/// through the driver itself (`remove()`, close code 1000), so no per-upstream group is needed to stop one.
public final class UpstreamFleet: Service, Sendable {
    /// One upstream and the signal that its `UpstreamService.run()` has returned (or never started).
    private struct Member: Sendable {
        let driver: UpstreamDriver
        let done = CompletionSignal()
    }

    /// In configuration order; `accepting` turns false when shutdown begins.
    private let members: NIOLockedValueBox<(accepting: Bool, list: [Member])>
    private let pending: AsyncStream<Member>
    private let pendingContinuation: AsyncStream<Member>.Continuation
    private let onChange: @Sendable () -> Void

    /// - Parameter onChange: called after membership changed (for the status board's counts).
    public init(drivers: [UpstreamDriver], logger: Logger, onChange: @escaping @Sendable () -> Void = {}) {
        (pending, pendingContinuation) = AsyncStream.makeStream(of: Member.self)
        let initial = drivers.map { Member(driver: $0) }
        members = NIOLockedValueBox((true, initial))
        for member in initial { pendingContinuation.yield(member) }
        self.onChange = onChange
    }

    /// The current upstreams, in configuration order.
    public var drivers: [UpstreamDriver] { members.withLockedValue { $0.list.map(\.driver) } }

    public func driver(named name: String) -> UpstreamDriver? {
        members.withLockedValue { $0.list.first { $0.driver.settings.name == name }?.driver }
    }

    /// Starts `driver` (configured, not started). After shutdown has begun it is not started.
    public func add(_ driver: UpstreamDriver) {
        let member = Member(driver: driver)
        let accepted = members.withLockedValue { members -> Bool in
            members.list.append(member)
            return members.accepting
        }
        if accepted, case .enqueued = pendingContinuation.yield(member) {} else { member.done.signal() }
        onChange()
    }

    /// Closes the named upstream with 1000 and waits until it has finished (closing handshake done or timed
    /// out). Returns its last status, or nil if there is no such upstream.
    @discardableResult
    public func remove(named name: String) async -> UpstreamState? {
        let removed = members.withLockedValue { members -> Member? in
            guard let index = members.list.firstIndex(where: { $0.driver.settings.name == name }) else { return nil }
            return members.list.remove(at: index)
        }
        guard let removed else { return nil }
        removed.driver.remove()
        await removed.done.wait()
        onChange()
        return removed.driver.status
    }

    /// Puts the drivers back in configuration order after a reload added or replaced some.
    public func order(by names: [String]) {
        let rank = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        members.withLockedValue { members in
            members.list.sort { (rank[$0.driver.settings.name] ?? .max) < (rank[$1.driver.settings.name] ?? .max) }
        }
    }

    public func run() async throws {
        let pending = self.pending
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { tasks in
                for await member in pending {
                    tasks.addTask {
                        try? await UpstreamService(driver: member.driver).run()
                        member.done.signal()
                    }
                }
                // The stream ends on graceful shutdown; the upstreams, shutting down together, are awaited here.
            }
        } onGracefulShutdown: { [members, pendingContinuation] in
            members.withLockedValue { $0.accepting = false }
            pendingContinuation.finish()
        }
    }
}

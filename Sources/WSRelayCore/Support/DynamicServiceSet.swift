import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Services that join and leave while the daemon runs: what a reload adds or takes away.
///
/// The daemon's `ServiceGroup` has a fixed membership and stops its services one after another; reload needs
/// both to change the members and to stop one of them alone. Each member therefore runs in a nested
/// `ServiceGroup` of its own (no signals): `retire` triggers that group's graceful shutdown only, while the
/// daemon's shutdown reaches every member at the same time, because a nested group follows the graceful
/// shutdown of the task it runs in.
public final class DynamicServiceSet: Service, Sendable {
    /// One running service; the handle to retire it or wait for it.
    public final class Member: Sendable {
        fileprivate let group: ServiceGroup
        fileprivate let done = CompletionSignal()

        fileprivate init(group: ServiceGroup) { self.group = group }

        /// Returns once the service's `run()` has returned (or it never started because the set had stopped).
        public func finished() async { await done.wait() }
    }

    private let logger: Logger
    private let accepting = NIOLockedValueBox(true)
    private let pending: AsyncStream<Member>
    private let pendingContinuation: AsyncStream<Member>.Continuation

    public init(logger: Logger) {
        self.logger = logger
        (pending, pendingContinuation) = AsyncStream.makeStream(of: Member.self)
    }

    /// Starts `service` (at once if the set is running, else when it starts). After shutdown has begun the
    /// service is not started and its member reports finished at once.
    @discardableResult
    public func add(_ service: any Service) -> Member {
        let member = Member(group: ServiceGroup(configuration: .init(services: [service], logger: logger)))
        let accepted = accepting.withLockedValue { $0 }
        if accepted, case .enqueued = pendingContinuation.yield(member) {
            return member
        }
        member.done.signal()
        return member
    }

    /// Gracefully stops one member (its `run()` sees `gracefulShutdown()`) and waits until it has returned.
    public func retire(_ member: Member) async {
        await member.group.triggerGracefulShutdown()
        await member.finished()
    }

    public func run() async throws {
        let pending = self.pending
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { tasks in
                for await member in pending {
                    tasks.addTask {
                        try? await member.group.run()
                        member.done.signal()
                    }
                }
                // The stream ends on graceful shutdown; the members, shutting down together, are awaited here.
            }
        } onGracefulShutdown: { [accepting, pendingContinuation] in
            accepting.withLockedValue { $0 = false }
            pendingContinuation.finish()
        }
    }
}

/// A one-shot "it has happened" that any number of tasks can await, before or after the fact.
final class CompletionSignal: Sendable {
    private let state = NIOLockedValueBox<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            guard !state.done else { return [] }
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

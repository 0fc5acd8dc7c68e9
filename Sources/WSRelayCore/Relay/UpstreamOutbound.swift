import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The way back: takes an `UpstreamSend` that its asker was allowed to make (a unix sink with
/// `allow_send = true` checked its subscriber, the control socket its peer) and hands it to that upstream's
/// supervisor as an event, returning the ack or the refusal.
///
/// Sinks are opened before the upstreams exist, so they get this object empty and the runtime `attach`es
/// the fleet and the persisted list once it has them; until then (and after `detach`) every send is refused
/// as `unavailable`.
public final class UpstreamOutbound: Sendable {
    private struct Targets {
        var fleet: UpstreamFleet
        var store: PersistedSendStore
    }

    private let targets = NIOLockedValueBox<Targets?>(nil)

    public init() {}

    public func attach(fleet: UpstreamFleet, store: PersistedSendStore) {
        targets.withLockedValue { $0 = Targets(fleet: fleet, store: store) }
    }

    public func detach() {
        targets.withLockedValue { $0 = nil }
    }

    /// Checks the size and the upstream, persists first when asked (off the event loop: it fsyncs), then
    /// hands the message to the upstream's supervisor. The future fails with `UpstreamSendRefusal`.
    public func send(_ request: UpstreamSend, on loop: any EventLoop) -> EventLoopFuture<UpstreamSendOutcome> {
        let targets: Targets
        let driver: UpstreamDriver
        do {
            (targets, driver) = try check(request)
        } catch {
            return loop.makeFailedFuture(error)
        }
        guard request.persist else {
            return driver.send(request.message, persisted: false).hop(to: loop)
        }
        return NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
            try targets.store.add(request.message, for: request.upstream)
        }.flatMap {
            driver.send(request.message, persisted: true).hop(to: loop)
        }
    }

    /// The same for callers without an event loop of their own (the control socket): runs on the upstream's.
    public func send(_ request: UpstreamSend) async throws -> UpstreamSendOutcome {
        let (_, driver) = try check(request)
        return try await send(request, on: driver.loop).get()
    }

    private func check(_ request: UpstreamSend) throws(UpstreamSendRefusal) -> (Targets, UpstreamDriver) {
        guard let targets = targets.withLockedValue({ $0 }) else { throw .unavailable }
        guard request.size <= UpstreamSend.maximumSize else {
            throw .tooLarge(size: request.size, limit: UpstreamSend.maximumSize)
        }
        guard let driver = targets.fleet.driver(named: request.upstream) else {
            throw .unknownUpstream(name: request.upstream, known: targets.fleet.drivers.map(\.settings.name))
        }
        return (targets, driver)
    }

    /// Removes a persisted message (`wsrelay unsend`). Blocking: call from a task, not an event loop.
    public func unsend(upstream: String, message: OutgoingMessage) throws -> Bool {
        guard let targets = targets.withLockedValue({ $0 }) else { throw UpstreamSendRefusal.unavailable }
        return try targets.store.remove(message, for: upstream)
    }

    /// Persisted messages by upstream (for status).
    public var persisted: [String: [OutgoingMessage]] {
        targets.withLockedValue { $0 }?.store.all ?? [:]
    }
}

import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Every running upstream, as one service whose membership a reload changes while the daemon runs.
///
/// Upstreams are members of a `DynamicServiceSet` rather than services of the daemon's `ServiceGroup`: a
/// reload must add and remove them without a restart, and on shutdown they must all start their closing
/// handshakes at once (a service group stops its services one after another, so one stalled server would
/// eat the shutdown budget of every upstream behind it).
public final class UpstreamFleet: Service, Sendable {
    private let set: DynamicServiceSet
    /// In configuration order.
    private let members: NIOLockedValueBox<[(driver: UpstreamDriver, member: DynamicServiceSet.Member)]>
    private let onChange: @Sendable () -> Void

    /// - Parameter onChange: called after membership changed (for the status board's counts).
    public init(drivers: [UpstreamDriver], logger: Logger, onChange: @escaping @Sendable () -> Void = {}) {
        set = DynamicServiceSet(logger: logger)
        members = NIOLockedValueBox(drivers.map { [set] in ($0, set.add(UpstreamService(driver: $0))) })
        self.onChange = onChange
    }

    /// The current upstreams, in configuration order.
    public var drivers: [UpstreamDriver] { members.withLockedValue { $0.map(\.driver) } }

    public func driver(named name: String) -> UpstreamDriver? {
        members.withLockedValue { $0.first { $0.driver.settings.name == name }?.driver }
    }

    /// Starts `driver` (configured, not started).
    public func add(_ driver: UpstreamDriver) {
        let member = set.add(UpstreamService(driver: driver))
        members.withLockedValue { $0.append((driver, member)) }
        onChange()
    }

    /// Closes the named upstream with 1000 and waits until it has finished (closing handshake done or timed
    /// out). Returns its last status, or nil if there is no such upstream.
    @discardableResult
    public func remove(named name: String) async -> UpstreamState? {
        let removed = members.withLockedValue { members -> (driver: UpstreamDriver, member: DynamicServiceSet.Member)? in
            guard let index = members.firstIndex(where: { $0.driver.settings.name == name }) else { return nil }
            return members.remove(at: index)
        }
        guard let removed else { return nil }
        removed.driver.remove()
        await removed.member.finished()
        onChange()
        return removed.driver.status
    }

    /// Puts the drivers back in configuration order after a reload added or replaced some.
    public func order(by names: [String]) {
        let rank = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        members.withLockedValue { members in
            members.sort { (rank[$0.driver.settings.name] ?? .max) < (rank[$1.driver.settings.name] ?? .max) }
        }
    }

    public func run() async throws {
        try await set.run()
    }
}

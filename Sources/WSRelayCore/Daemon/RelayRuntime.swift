import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle

/// The parts built from the configuration — upstreams, credentials, sinks — and how a reload changes them.
///
/// The daemon frame (`Daemon`) knows nothing about WebSockets or files: it opens the runtime, announces
/// readiness, runs the runtime's services in a `ServiceGroup`, forwards reloads and control requests, and
/// reads the status board for `STATUS=`.
public final class RelayRuntime: Sendable {
    public let sinks: SinkSet
    public let credentials: CredentialStore
    public let upstreams: UpstreamFleet
    private let configuration: NIOLockedValueBox<Configuration>
    private let makeDriver: @Sendable (UpstreamSettings, Configuration) -> UpstreamDriver
    private let metrics: RelayMetrics
    /// One reload at a time (SIGHUP and the control socket may ask together).
    private let reloads = ReloadSerializer()
    private let logger: Logger

    private init(configuration: Configuration, sinks: SinkSet, credentials: CredentialStore, upstreams: UpstreamFleet,
                 makeDriver: @escaping @Sendable (UpstreamSettings, Configuration) -> UpstreamDriver,
                 metrics: RelayMetrics, logger: Logger) {
        self.metrics = metrics
        self.configuration = NIOLockedValueBox(configuration)
        self.sinks = sinks
        self.credentials = credentials
        self.upstreams = upstreams
        self.makeDriver = makeDriver
        self.logger = logger
    }

    /// Opens what must exist before READY=1 — files, listening sockets — and prepares (but does not start)
    /// the upstreams. A thrown error is a startup error, reported as such.
    public static func open(
        configuration: Configuration, group: any EventLoopGroup, board: DaemonStatusBoard, forcedExit: ForcedExit,
        environment: [String: String], logger: Logger, metrics: RelayMetrics = .disabled,
        fdStore: FileDescriptorStore = .disabled
    ) async throws -> RelayRuntime {
        if fdStore.isEnabled {
            fdStore.previousCounters = CounterHandover.take(stateDir: configuration.daemon.stateDir, logger: logger)
        }
        let sinks = try await SinkSet.open(
            configuration.sinks, upstreamNames: configuration.upstreams.map(\.name), group: group,
            forcedExit: forcedExit, environment: environment, logger: logger, fdStore: fdStore,
            onSubscribersChanged: { delta in board.update { $0.subscribers += delta } })
        let credentials = CredentialStore(
            settings: configuration.auth, stateDir: configuration.daemon.stateDir, environment: environment,
            group: group, logger: logger, metrics: metrics)
        let summary = UpstreamStatusSummary()
        let epochs = EpochReservation(stateDir: configuration.daemon.stateDir, logger: logger)
        // Persisted sends are not configuration: one store for the life of the process, across reloads.
        let persistedSends = PersistedSendStore(stateDir: configuration.daemon.stateDir, logger: logger)
        let makeDriver: @Sendable (UpstreamSettings, Configuration) -> UpstreamDriver = { settings, configuration in
            let traffic = board.traffic.counters(for: settings.name)
            return UpstreamDriver(
                settings: settings,
                loop: group.next(),
                consumer: sinks.router,
                flowControls: sinks.flowControls,
                credentials: settings.auth.flatMap { credentials.credential(named: $0) },
                tlsContext: settings.url.secure ? Result { try TLSContextFactory.makeContext(settings.tls) } : nil,
                // Half the shutdown budget for the closing handshake; the rest is for the sinks to drain.
                closeTimeout: configuration.daemon.shutdownTimeout / 2,
                proxy: ProxyResolver.resolve(for: settings.url, configured: settings.proxy, environment: environment),
                logger: logger,
                onStatusChange: { summary.publishSoon(to: board, on: group.any()) },
                traffic: traffic,
                metrics: metrics.upstream(named: settings.name, traffic: traffic),
                epochs: epochs,
                persistedSends: persistedSends
            )
        }
        let drivers = configuration.upstreams.map { makeDriver($0, configuration) }
        for driver in drivers {
            // Subscribers kept across a restart see epoch and seq keep growing.
            guard let counters = fdStore.previousCounters?.upstreams[driver.settings.name] else { continue }
            driver.continueFrom(UpstreamState(name: driver.settings.name, phase: .idle, since: .now,
                                              epoch: counters.epoch, messages: counters.seq))
        }
        let fleet = UpstreamFleet(
            drivers: drivers, logger: logger,
            onChange: { summary.publishSoon(to: board, on: group.any()) })
        summary.fleet = fleet
        sinks.outbound.attach(fleet: fleet, store: persistedSends)
        summary.publish(to: board)
        return RelayRuntime(configuration: configuration, sinks: sinks, credentials: credentials, upstreams: fleet,
                            makeDriver: makeDriver, metrics: metrics, logger: logger)
    }

    /// Long-running parts in start order. Shutdown runs in reverse: upstreams close first (all at once), then
    /// every sink drains what was received into its files and subscribers, and the token endpoints' HTTP
    /// clients close last.
    public var services: [any Service] {
        [CredentialStoreService(store: credentials), sinks, upstreams]
    }

    /// The counters to hand to the next process (after the upstreams finished).
    public var counterHandover: CounterHandover {
        CounterHandover(upstreams: Dictionary(
            upstreams.drivers.map { ($0.settings.name, CounterHandover.Counters(epoch: $0.status.epoch, seq: $0.status.messages)) },
            uniquingKeysWith: { first, _ in first }))
    }

    /// The configuration in effect (the last one applied).
    public var current: Configuration { configuration.withLockedValue { $0 } }

    /// Applies a new, already validated configuration as a diff (see `ReloadPlan`), reopens log files and
    /// lets failed credentials retry at once (SIGHUP's other duties). Throws, having changed nothing, when a
    /// new sink cannot be opened.
    @discardableResult
    public func apply(_ next: Configuration) async throws -> ReloadPlan {
        try await reloads.run { try await self.applySerially(next) }
    }

    private func applySerially(_ next: Configuration) async throws -> ReloadPlan {
        let previous = current
        let plan = ReloadPlan(from: previous, to: next)
        for key in plan.needsRestart {
            logger.warning("reload: \(key) changed; it takes effect at the next restart")
        }
        if plan.sinksChanged {
            try await sinks.apply(next.sinks)  // the only step that can fail; it changes nothing when it does
        }
        configuration.withLockedValue { $0 = next }
        logger.notice("reload: \(plan.summary)")

        // Upstreams that go or change close first (with 1000), so a changed credential is not in use when it
        // is replaced; changed ones continue their seq and epoch in the new driver.
        let leaving = plan.removedUpstreams + plan.changedUpstreams
        let finalStates = await withTaskGroup(of: (String, UpstreamState?).self) { group in
            for name in leaving {
                group.addTask { (name, await self.upstreams.remove(named: name)) }
            }
            var states: [String: UpstreamState] = [:]
            for await (name, state) in group { states[name] = state }
            return states
        }
        for name in plan.removedUpstreams { metrics.removeUpstream(named: name) }
        let retired = credentials.replace(plan.changedCredentials, from: next.auth)
        for settings in next.upstreams
        where plan.addedUpstreams.contains(settings.name) || plan.changedUpstreams.contains(settings.name) {
            let driver = makeDriver(settings, next)
            if let previous = finalStates[settings.name] { driver.continueFrom(previous) }
            upstreams.add(driver)
        }
        upstreams.order(by: next.upstreams.map(\.name))
        await CredentialStore.shutdown(retired)
        sinks.reopenFiles()
        credentials.resumeFailed()
        return plan
    }
}

/// Runs reloads one after another, in the order they were asked for.
final class ReloadSerializer: Sendable {
    private let queue = NIOLockedValueBox<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let (stream, done) = AsyncStream.makeStream(of: Result<T, any Error>.self)
        queue.withLockedValue { previous in
            let before = previous
            previous = Task {
                await before?.value
                do { done.yield(.success(try await body())) } catch { done.yield(.failure(error)) }
                done.finish()
            }
        }
        for await result in stream { return try result.get() }
        throw CancellationError()
    }
}

/// Keeps the credential store's HTTP clients open until everything that may refresh a token has stopped.
struct CredentialStoreService: Service {
    let store: CredentialStore

    func run() async throws {
        try? await gracefulShutdown()
        await store.shutdown()
    }
}

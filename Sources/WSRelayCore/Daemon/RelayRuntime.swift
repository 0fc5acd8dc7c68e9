import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle

/// The parts built from one configuration — upstreams, router, sinks — and how they change on reload.
///
/// The daemon frame (`Daemon`) knows nothing about WebSockets or files: it opens the runtime, announces
/// readiness, runs the runtime's services in a `ServiceGroup`, forwards reloads, and reads the status board
/// for `STATUS=`.
public final class RelayRuntime: Sendable {
    public let sinks: SinkSet
    public let credentials: CredentialStore
    public let upstreams: [UpstreamDriver]

    private init(sinks: SinkSet, credentials: CredentialStore, upstreams: [UpstreamDriver]) {
        self.sinks = sinks
        self.credentials = credentials
        self.upstreams = upstreams
    }

    /// Opens what must exist before READY=1 — files, listening sockets — and prepares (but does not start)
    /// the upstreams. A thrown error is a startup error, reported as such.
    public static func open(
        configuration: Configuration, group: any EventLoopGroup, board: DaemonStatusBoard, forcedExit: ForcedExit,
        environment: [String: String], logger: Logger
    ) async throws -> RelayRuntime {
        let sinks = try await SinkSet.open(
            configuration.sinks, upstreamNames: configuration.upstreams.map(\.name), group: group,
            forcedExit: forcedExit, environment: environment, logger: logger)
        let credentials = CredentialStore(
            settings: configuration.auth, stateDir: configuration.daemon.stateDir, environment: environment,
            group: group, logger: logger)
        let registry = UpstreamRegistry()
        let drivers = configuration.upstreams.map { settings in
            UpstreamDriver(
                settings: settings,
                loop: group.next(),
                consumer: sinks.router,
                credentials: settings.auth.flatMap { credentials.credential(named: $0) },
                tlsContext: settings.url.secure ? Result { try TLSContextFactory.makeContext(settings.tls) } : nil,
                // Half the shutdown budget for the closing handshake; the rest is for the sinks to drain.
                closeTimeout: configuration.daemon.shutdownTimeout / 2,
                proxy: ProxyResolver.resolve(for: settings.url, configured: settings.proxy, environment: environment),
                logger: logger,
                onStatusChange: { registry.publish(to: board) },
                onMessages: { board.addMessages($0) }
            )
        }
        registry.set(drivers)
        registry.publish(to: board)
        return RelayRuntime(sinks: sinks, credentials: credentials, upstreams: drivers)
    }

    /// Long-running parts in start order. Shutdown runs in reverse: upstreams close first, then every sink
    /// drains what was received into its files and subscribers, and the token endpoints' HTTP clients close
    /// last.
    public var services: [any Service] {
        [CredentialStoreService(store: credentials)] + sinks.services + upstreams.map { UpstreamService(driver: $0) }
    }

    /// Applies a new, already validated configuration: reopens log files and lets failed credentials retry
    /// at once (SIGHUP's other duties).
    public func apply(_ configuration: Configuration) async {
        sinks.reopenFiles()
        credentials.resumeFailed()
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

/// Turns the upstreams' individual states into the board's summary, worst problem first.
final class UpstreamRegistry: Sendable {
    private let drivers = NIOLockedValueBox<[UpstreamDriver]>([])

    func set(_ list: [UpstreamDriver]) { drivers.withLockedValue { $0 = list } }

    func publish(to board: DaemonStatusBoard) {
        let states = drivers.withLockedValue { $0 }.map(\.status)
        board.update { snapshot in
            snapshot.upstreamsConfigured = states.count
            snapshot.upstreamsConnected = states.filter { $0.phase == .open }.count
            snapshot.problems = states.compactMap(Self.problem)
        }
    }

    /// What an operator needs to read first about an upstream that is not delivering, or nil if it is fine.
    static func problem(_ state: UpstreamState) -> String? {
        let cause = state.lastError ?? state.lastCloseCode.map { "closed \($0)" }
        switch state.phase {
        case .stopped, .backingOff:
            return "\(state.name): \(cause ?? state.phase.rawValue)"
        case .refreshingCredentials, .connecting:
            return cause.map { "\(state.name): \($0)" }
        default:
            return nil
        }
    }
}

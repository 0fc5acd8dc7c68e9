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
    public let group: any EventLoopGroup
    public let sinks: SinkSet
    public let upstreams: [UpstreamDriver]
    private let logger: Logger
    private let board: DaemonStatusBoard

    private init(group: any EventLoopGroup, sinks: SinkSet, upstreams: [UpstreamDriver], board: DaemonStatusBoard, logger: Logger) {
        self.group = group
        self.sinks = sinks
        self.upstreams = upstreams
        self.board = board
        self.logger = logger
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
        let registry = UpstreamRegistry()
        let drivers = configuration.upstreams.map { settings in
            UpstreamDriver(
                settings: settings,
                loop: group.next(),
                consumer: sinks.router,
                credentials: nil,
                tlsContext: settings.url.secure ? Result { try TLSContextFactory.makeContext(settings.tls) } : nil,
                logger: logger,
                onStatusChange: { registry.publish(to: board) },
                onMessages: { board.addMessages($0) }
            )
        }
        registry.set(drivers)
        board.update { $0.upstreamsConfigured = drivers.count }
        return RelayRuntime(group: group, sinks: sinks, upstreams: drivers, board: board, logger: logger)
    }

    /// Long-running parts in start order. Shutdown runs in reverse: upstreams close first, then every sink
    /// drains what was received into its files and subscribers.
    public var services: [any Service] {
        sinks.services + upstreams.map { UpstreamService(driver: $0) }
    }

    /// Applies a new, already validated configuration: reopens log files (SIGHUP's other duty).
    public func apply(_ configuration: Configuration) async {
        sinks.reopenFiles()
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

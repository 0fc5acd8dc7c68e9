import Logging
import NIOCore
import ServiceLifecycle

/// The parts built from one configuration — upstreams, router, sinks — and how they change on reload.
///
/// The daemon frame (`Daemon`) knows nothing about WebSockets or files: it opens the runtime, announces
/// readiness, runs the runtime's services in a `ServiceGroup`, forwards reloads, and reads a one-line summary
/// for `STATUS=`.
public final class RelayRuntime: Sendable {
    public let group: any EventLoopGroup
    private let logger: Logger
    private let status: DaemonStatusBoard

    public init(configuration: Configuration, group: any EventLoopGroup, status: DaemonStatusBoard, logger: Logger) {
        self.group = group
        self.logger = logger
        self.status = status
        status.update { board in
            board.upstreamsConfigured = configuration.upstreams.count
        }
    }

    /// Opens what must exist before READY=1: files, listening sockets. Throws a startup error to report.
    public func open() async throws {}

    /// Long-running parts, in start order; they are shut down in reverse (upstreams first, sinks last, so
    /// every received message is drained into the sinks).
    public var services: [any Service] { [] }

    /// Applies a new, already validated configuration.
    public func apply(_ configuration: Configuration) async {
        status.update { board in
            board.upstreamsConfigured = configuration.upstreams.count
        }
    }
}

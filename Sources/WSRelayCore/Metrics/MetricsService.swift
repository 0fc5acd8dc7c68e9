import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The `[metrics] listen` endpoint: plain HTTP/1.1 on the daemon's event loops serving `GET /metrics`.
///
/// `open` binds before READY=1, so a port in use or a socket path that cannot be taken is a startup error.
/// A Unix socket path is prepared the way socket sinks do it (a stale socket file is replaced, a live one or
/// a non-socket is refused) and gets mode 0660; the file is removed again at shutdown if it is still ours.
/// As a `Service` it serves until graceful shutdown, then closes the listener and open scrape connections.
public final class MetricsService: Service, Sendable {
    public let address: MetricsListenAddress
    private let listener: any Channel
    /// Open scrape connections (filled by the child channel initializer).
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>
    /// The socket file we bound, by identity, to remove only our own at shutdown.
    private let ownedPath: NIOLockedValueBox<OwnedSocketPath?>
    private let logger: Logger

    static let socketMode: UInt32 = 0o660

    private init(address: MetricsListenAddress, listener: any Channel,
                 connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>,
                 ownedPath: OwnedSocketPath?, logger: Logger) {
        self.address = address
        self.listener = listener
        self.connections = connections
        self.ownedPath = NIOLockedValueBox(ownedPath)
        self.logger = logger
    }

    /// Binds the endpoint of `settings`; nil when metrics are off. `sinks` is read at every scrape.
    public static func open(
        _ settings: MetricsSettings, metrics: RelayMetrics, group: any EventLoopGroup, logger: Logger,
        sinks: @escaping @Sendable () -> [SinkStatus]
    ) async throws -> MetricsService? {
        guard let listen = settings.listen else { return nil }
        guard let address = MetricsListenAddress(listen) else {
            throw SetupError("metrics listen \"\(listen)\": not a loopback host:port or an absolute socket path")
        }
        return try await open(address, scrape: { metrics.exposition(sinks: sinks()) }, group: group, logger: logger)
    }

    /// Binds `address` and answers every scrape with `scrape()`.
    static func open(
        _ address: MetricsListenAddress, scrape: @escaping @Sendable () -> [UInt8], group: any EventLoopGroup,
        logger: Logger
    ) async throws -> MetricsService {
        let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                AcceptFailureBackoff.install(on: channel, label: "metrics \(address)", logger: logger)
            }
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                connections.withLockedValue { $0[id] = channel }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: id) } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(PrometheusHTTPHandler(scrape: scrape))
                }
            }
        let listener: any Channel
        var owned: OwnedSocketPath?
        switch address {
        case .tcp(let host, let port):
            do {
                listener = try await bootstrap.bind(host: host, port: port).get()
            } catch let error as IOError {
                throw SetupError("metrics \(address): cannot listen: \(SystemError.describe(error.errnoCode))")
            } catch {
                throw SetupError("metrics \(address): cannot listen: \(error)")
            }
        case .unix(let path):
            (listener, owned) = try await UnixSocketPath.bindListener(
                path, role: "metrics", mode: socketMode, logger: logger,
                bind: { try await bootstrap.bind(unixDomainSocketPath: path).get() },
                close: { try? await $0.close() })
        }
        let service = MetricsService(address: address, listener: listener, connections: connections, ownedPath: owned,
                                     logger: logger)
        logger.info("metrics endpoint listening", metadata: [
            "address": "\(service.boundDescription)", "path": "\(PrometheusHTTPHandler.path)",
        ])
        return service
    }

    /// What the listener is bound to: for TCP the actual port (useful with tests that bind port 0).
    public var boundDescription: String {
        switch address {
        case .unix(let path): return path
        case .tcp:
            guard let local = listener.localAddress, let ip = local.ipAddress, let port = local.port else {
                return address.description
            }
            return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Stops accepting, closes open scrape connections and removes the socket file if it is still ours.
    func close() async {
        try? await listener.close()
        for channel in connections.withLockedValue({ Array($0.values) }) { try? await channel.close() }
        ownedPath.withLockedValue { value in defer { value = nil }; return value }?.remove()
        logger.debug("metrics endpoint closed")
    }
}

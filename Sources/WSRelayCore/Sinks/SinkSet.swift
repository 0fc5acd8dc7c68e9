import Foundation
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Every sink of the running configuration, the router that feeds them, and the service that runs them.
///
/// The runtime opens it before READY=1 (files opened, sockets bound: errors are startup errors), gives
/// `router` to the upstreams as their `RelayEventConsumer` and `flowControls` as their `UpstreamFlowControls`,
/// and runs it in the daemon's `ServiceGroup`
/// *before* the upstreams, so that graceful shutdown (reverse order) stops the upstreams first and then lets
/// every sink drain, flush and fsync.
///
/// A reload hands the new sink list to `apply`: sinks whose settings are unchanged stay open (subscribers stay
/// connected, files keep their descriptors), changed and added ones are opened, removed ones drain and close.
/// The router (and with it every upstream's consumer) stays the same object throughout.
public final class SinkSet: Service, Sendable {
    public let router: MessageRouter
    /// Where upstreams register to be paused by sinks under `on_full = "block"`.
    public let flowControls: FlowControlRegistry
    /// The way back to the upstreams for subscribers of sinks with `allow_send` (the runtime attaches it).
    public let outbound: UpstreamOutbound
    private let members: NIOLockedValueBox<[Entry]>
    private let running: DynamicServiceSet
    private let group: any EventLoopGroup
    private let forcedExit: ForcedExit
    private let logger: Logger
    private let onSubscribersChanged: @Sendable (Int) -> Void
    private let fdStore: FileDescriptorStore

    private init(opened: [OpenedSink], router: MessageRouter, flowControls: FlowControlRegistry, outbound: UpstreamOutbound, fdStore: FileDescriptorStore,
                 group: any EventLoopGroup, forcedExit: ForcedExit, logger: Logger,
                 onSubscribersChanged: @escaping @Sendable (Int) -> Void) {
        self.outbound = outbound
        self.fdStore = fdStore
        self.onSubscribersChanged = onSubscribersChanged
        let running = DynamicServiceSet(logger: logger)
        self.running = running
        self.router = router
        self.flowControls = flowControls
        self.group = group
        self.forcedExit = forcedExit
        self.logger = logger
        members = NIOLockedValueBox(opened.map { ($0, running.add($0.service)) })
    }

    /// Opens files and binds sockets. A thrown error is a startup error (`SetupError`, one line naming the
    /// path and the cause); whatever was opened before it is closed again. `onSubscribersChanged` gets +1 / -1
    /// as socket subscribers come and go.
    public static func open(
        _ settings: [SinkSettings], upstreamNames: [String], group: any EventLoopGroup, forcedExit: ForcedExit,
        environment: [String: String], logger: Logger, fdStore: FileDescriptorStore = .disabled,
        onSubscribersChanged: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> SinkSet {
        try await open(settings, upstreamNames: upstreamNames, group: group, forcedExit: forcedExit,
                       inheritedSockets: SocketActivation.inheritedSockets(environment: environment), logger: logger,
                       fdStore: fdStore, onSubscribersChanged: onSubscribersChanged)
    }

    /// The same, with the socket-activation descriptors given directly (tests hand in their own).
    static func open(
        _ settings: [SinkSettings], upstreamNames: [String], group: any EventLoopGroup, forcedExit: ForcedExit,
        inheritedSockets: [SocketActivation.InheritedSocket], logger: Logger, fdStore: FileDescriptorStore = .disabled,
        onSubscribersChanged: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> SinkSet {
        let directory = UpstreamDirectory(names: upstreamNames)
        let registry = FlowControlRegistry(directory: directory)
        var inherited = inheritedSockets
        let outbound = UpstreamOutbound()
        let opened = try await openSinks(settings, directory: directory, registry: registry, outbound: outbound,
                                         fdStore: fdStore, group: group, forcedExit: forcedExit, inherited: &inherited,
                                         logger: logger, onSubscribersChanged: onSubscribersChanged)
        // Stored descriptors no sink took (its sink is gone from the configuration): let them go.
        for socket in inherited where StoredSocketName.parse(socket.name) != nil {
            logger.notice("file descriptor store: releasing \(socket.name); no sink of this configuration uses it")
            close(socket.fd)
            fdStore.remove(name: socket.name)
        }
        let router = MessageRouter(directory: directory, lineSinks: opened.compactMap(\.lineSink),
                                   eventSinks: opened.compactMap(\.eventSink))
        return SinkSet(opened: opened, router: router, flowControls: registry, outbound: outbound, fdStore: fdStore, group: group, forcedExit: forcedExit, logger: logger,
                       onSubscribersChanged: onSubscribersChanged)
    }

    /// Opens `settings` in order; on a failure closes what it opened and rethrows.
    private static func openSinks(
        _ settings: [SinkSettings], directory: UpstreamDirectory, registry: FlowControlRegistry,
        outbound: UpstreamOutbound, fdStore: FileDescriptorStore, group: any EventLoopGroup, forcedExit: ForcedExit, inherited: inout [SocketActivation.InheritedSocket],
        logger: Logger, onSubscribersChanged: @escaping @Sendable (Int) -> Void
    ) async throws -> [OpenedSink] {
        var opened: [OpenedSink] = []
        do {
            for sink in settings {
                switch sink.kind {
                case .file(let file):
                    opened.append(.file(try FileSink(settings: sink, file: file, directory: directory,
                                                     registry: registry, forcedExit: forcedExit, logger: logger)))
                case .stdout:
                    opened.append(.file(FileSink(stdout: sink, directory: directory, registry: registry,
                                                 forcedExit: forcedExit, logger: logger)))
                case .unix(let unix):
                    opened.append(.unix(try await UnixSocketSink.open(
                        settings: sink, unix: unix, group: group, directory: directory, inherited: &inherited,
                        outbound: outbound, fdStore: fdStore, logger: logger, onSubscribersChanged: onSubscribersChanged)))
                case .journal:
                    opened.append(.journal(JournalSink(settings: sink, directory: directory, logger: logger)))
                case .jetstream(let jetstream):
                    // Connects on its own thread once running: an unreachable cluster is not a startup error.
                    opened.append(.jetstream(JetStreamSink(
                        settings: sink, jetstream: jetstream, directory: directory, registry: registry,
                        environment: ProcessInfo.processInfo.environment, logger: logger)))
                }
            }
        } catch {
            for sink in opened { await sink.closeWithoutRunning() }
            throw error
        }
        return opened
    }

    /// Runs every sink until graceful shutdown, then lets each drain what is queued (files: written, flushed,
    /// fsynced; subscribers: up to 2 s) — all at the same time.
    public func run() async throws {
        try await running.run()
    }

    /// Reload: keeps sinks whose settings are unchanged, opens changed and new ones, drains and closes the
    /// rest. New files and sockets are opened before anything is closed, so a sink that cannot be opened
    /// (the error is thrown) leaves every sink as it was; only a socket that moves to a path an old sink
    /// still holds is bound after the old one has closed.
    public func apply(_ settings: [SinkSettings]) async throws {
        let current = members.withLockedValue { $0 }
        var unmatched = Array(current.indices)
        var kept: [Int: Int] = [:]  // new index -> current index
        for (index, wanted) in settings.enumerated() {
            if let position = unmatched.firstIndex(where: { current[$0].sink.settings == wanted }) {
                kept[index] = unmatched.remove(at: position)
            }
        }
        let retiring = unmatched.map { current[$0] }
        let toOpen = settings.indices.filter { kept[$0] == nil }
        let afterClose = toOpen.filter { index in retiring.contains { $0.sink.collides(with: settings[index]) } }
        let beforeClose = toOpen.filter { !afterClose.contains($0) }

        var none: [SocketActivation.InheritedSocket] = []  // descriptors from systemd were used at startup
        let early = try await Self.openSinks(
            beforeClose.map { settings[$0] }, directory: router.directory, registry: flowControls, outbound: outbound, fdStore: fdStore, group: group,
            forcedExit: forcedExit, inherited: &none, logger: logger, onSubscribersChanged: onSubscribersChanged)

        // From here on nothing can fail the reload: the new sinks start, the old ones go.
        var entries: [Int: Entry] = [:]
        for (index, old) in kept { entries[index] = current[old] }
        for (index, sink) in zip(beforeClose, early) { entries[index] = start(sink) }
        install(entries)
        for old in retiring {
            logger.notice("sink closed by reload", metadata: ["sink": "\(old.sink.status.name)"])
            await running.retire(old.member)
        }
        if !afterClose.isEmpty {
            do {
                let late = try await Self.openSinks(
                    afterClose.map { settings[$0] }, directory: router.directory, registry: flowControls,
                    outbound: outbound, fdStore: fdStore, group: group, forcedExit: forcedExit, inherited: &none, logger: logger,
                    onSubscribersChanged: onSubscribersChanged)
                for (index, sink) in zip(afterClose, late) { entries[index] = start(sink) }
            } catch {
                logger.error("reload: sink could not be reopened: \(error)")
            }
            install(entries)
        }
    }

    private typealias Entry = (sink: OpenedSink, member: DynamicServiceSet.Member)

    private func start(_ sink: OpenedSink) -> Entry {
        logger.notice("sink opened by reload", metadata: ["sink": "\(sink.status.name)"])
        return (sink, running.add(sink.service))
    }

    /// Makes `entries` (keyed by configuration index) the running sinks and routes messages to them.
    private func install(_ entries: [Int: Entry]) {
        let next = entries.sorted { $0.key < $1.key }.map(\.value)
        members.withLockedValue { $0 = next }
        router.setRoutes(lineSinks: next.compactMap(\.sink.lineSink), eventSinks: next.compactMap(\.sink.eventSink))
    }

    /// SIGHUP: every file sink closes and reopens its path (stdout has none and stays as it is).
    public func reopenFiles() {
        for (sink, _) in members.withLockedValue({ $0 }) {
            if case .file(let file) = sink { file.reopen() }
        }
    }

    /// Counters of every sink, in configuration order.
    public func snapshot() -> [SinkStatus] {
        members.withLockedValue { $0 }.map(\.sink.status)
    }

    /// Subscribers connected to all socket sinks now.
    public var subscriberCount: Int {
        members.withLockedValue { $0 }.reduce(0) { total, entry in
            if case .unix(let sink) = entry.sink { return total + sink.subscriberCount }
            return total
        }
    }
}

import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// `[[sink]] type = "unix"`: a listening `SOCK_STREAM` socket; every connected subscriber receives the lines
/// from the moment it connects.
///
/// - The socket is bound at `path` (a stale socket file is replaced, a live one is refused; `mode`, `owner`,
///   `group` applied after bind), or inherited from systemd socket activation: the descriptor named
///   `listen_fd_name`, or else an inherited descriptor already bound to `path`.
/// - Subscribers are spread over the event loops; see `SubscriberShard` and `SubscriberHandler`. A slow
///   subscriber is disconnected or has lines dropped for it alone (`slow_consumer`); it never slows the
///   upstreams, files or other subscribers.
/// - Graceful shutdown: stop accepting, remove the socket file (unless inherited), give subscribers up to
///   `drainTimeout` to take what is queued for them, close.
public final class UnixSocketSink: Service, LineSink, Sendable {
    let settings: SinkSettings
    /// +1 / -1 as subscribers come and go (the daemon's STATUS= line counts them).
    private let onSubscribersChanged: @Sendable (Int) -> Void
    let unix: UnixSinkSettings
    let format: SinkFormat
    let selection: UpstreamSelection
    let wantsEvents: Bool
    let directory: UpstreamDirectory
    /// Where `{"send":...}` requests go when `allow_send` is on.
    let outbound: UpstreamOutbound
    let logger: Logger
    /// For log lines: the path, or `fd:NAME` when inherited.
    let name: String

    static let drainTimeout: TimeAmount = .seconds(2)

    private let shards: [SubscriberShard]
    private let shardsByLoop: [ObjectIdentifier: SubscriberShard]
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    /// Set when we bound the path ourselves: its identity, to remove only our own file at shutdown.
    private let ownedPath = NIOLockedValueBox<OwnedSocketPath?>(nil)

    private let live = NIOLockedValueBox<[ObjectIdentifier: SubscriberStats]>([:])
    private let bytesWritten = Atomic<UInt64>(0)
    private let writes = Atomic<UInt64>(0)
    private let dropped = Atomic<UInt64>(0)
    private let slowDisconnects = Atomic<UInt64>(0)

    private init(settings: SinkSettings, unix: UnixSinkSettings, group: any EventLoopGroup, directory: UpstreamDirectory,
                 outbound: UpstreamOutbound, name: String, logger: Logger,
                 onSubscribersChanged: @escaping @Sendable (Int) -> Void) {
        self.outbound = outbound
        self.onSubscribersChanged = onSubscribersChanged
        self.settings = settings
        self.unix = unix
        self.format = settings.format
        self.wantsEvents = settings.events
        self.selection = UpstreamSelection(names: settings.upstreams, directory: directory)
        self.directory = directory
        self.name = name
        var logger = logger
        logger[metadataKey: "sink"] = "unix:\(name)"
        self.logger = logger
        var shards: [SubscriberShard] = []
        var byLoop: [ObjectIdentifier: SubscriberShard] = [:]
        for loop in group.makeIterator() {
            let shard = SubscriberShard(eventLoop: loop)
            shards.append(shard)
            byLoop[ObjectIdentifier(loop)] = shard
        }
        self.shards = shards
        self.shardsByLoop = byLoop
    }

    /// Binds (or adopts) the listening socket. Errors are startup errors naming the path and the cause.
    /// `inherited` are the socket-activation descriptors not yet taken by another sink; the one used is removed.
    static func open(
        settings: SinkSettings, unix: UnixSinkSettings, group: any EventLoopGroup, directory: UpstreamDirectory,
        inherited: inout [SocketActivation.InheritedSocket], outbound: UpstreamOutbound = UpstreamOutbound(),
        logger: Logger, onSubscribersChanged: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> UnixSocketSink {
        let activated = try pickInherited(unix: unix, inherited: &inherited)
        let name = activated.map { unix.listenFDName.map { "fd:\($0)" } ?? unix.path ?? "fd:\($0.fd)" } ?? unix.path ?? "?"
        let sink = UnixSocketSink(settings: settings, unix: unix, group: group, directory: directory, outbound: outbound,
                                  name: name, logger: logger,
                                  onSubscribersChanged: onSubscribersChanged)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SubscriberHandler(sink: sink))
                }
            }
        if let activated {
            if let problem = SocketActivation.problemWithListeningSocket(activated.fd) {
                throw SinkSetupError("unix sink \(name): inherited socket \"\(activated.name)\": \(problem)")
            }
            do {
                let channel = try await bootstrap.withBoundSocket(activated.fd).get()
                sink.listener.withLockedValue { $0 = channel }
            } catch {
                throw SinkSetupError("unix sink \(name): cannot use the inherited socket \"\(activated.name)\": \(error)")
            }
            logger.info("unix sink \(name): using the socket passed by systemd", metadata: ["fd": "\(activated.fd)"])
            return sink
        }
        guard let path = unix.path else {
            throw SinkSetupError("unix sink: listen_fd_name \"\(unix.listenFDName ?? "")\" was not passed by systemd (LISTEN_FDNAMES) and no path is set")
        }
        let (channel, owned) = try await UnixSocketPath.bindListener(
            path, role: "unix sink", mode: unix.mode, owner: unix.owner, group: unix.group, logger: logger,
            bind: { try await bootstrap.bind(unixDomainSocketPath: path).get() },
            close: { try? await $0.close() })
        sink.listener.withLockedValue { $0 = channel }
        sink.ownedPath.withLockedValue { $0 = owned }
        return sink
    }

    /// Socket activation: by `listen_fd_name`; otherwise an inherited socket already bound to `path`.
    private static func pickInherited(
        unix: UnixSinkSettings, inherited: inout [SocketActivation.InheritedSocket]
    ) throws(SinkSetupError) -> SocketActivation.InheritedSocket? {
        if let wanted = unix.listenFDName {
            if let index = inherited.firstIndex(where: { $0.name == wanted }) {
                return inherited.remove(at: index)
            }
            return nil  // falls back to `path`; `open` reports when there is none
        }
        if let path = unix.path, let index = inherited.firstIndex(where: { SocketActivation.boundPath(of: $0.fd) == path }) {
            return inherited.remove(at: index)
        }
        return nil
    }

    // MARK: Router side

    func enqueue(_ batch: EncodedBatch) {
        for shard in shards where shard.count.load(ordering: .relaxed) > 0 {
            shard.eventLoop.execute { shard.deliver(batch) }
        }
    }

    // MARK: Subscriber bookkeeping

    func shard(for loop: any EventLoop) -> SubscriberShard? {
        shardsByLoop[ObjectIdentifier(loop)]
    }

    func subscriberJoined(_ stats: SubscriberStats) {
        live.withLockedValue { $0[ObjectIdentifier(stats)] = stats }
        onSubscribersChanged(1)
    }

    func subscriberLeft(_ stats: SubscriberStats) {
        let removed = live.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(stats)) }
        if removed != nil { onSubscribersChanged(-1) }
    }

    func countWritten(_ bytes: Int) {
        bytesWritten.add(UInt64(bytes), ordering: .relaxed)
        writes.add(1, ordering: .relaxed)
    }
    func countDrop() { dropped.add(1, ordering: .relaxed) }
    func countSlowDisconnect() { slowDisconnects.add(1, ordering: .relaxed) }

    var subscriberCount: Int { shards.reduce(0) { $0 + $1.count.load(ordering: .relaxed) } }

    var status: SinkStatus {
        var status = SinkStatus(kind: .unix, name: name, format: format, upstreams: settings.upstreams)
        let subscribers = live.withLockedValue { Array($0.values) }.map(\.status).sorted { $0.connectedAt < $1.connectedAt }
        status.subscribers = subscribers
        status.bytesWritten = bytesWritten.load(ordering: .relaxed)
        status.writes = writes.load(ordering: .relaxed)
        status.dropped = dropped.load(ordering: .relaxed)
        status.bufferedBytes = subscribers.reduce(0) { $0 + $1.queuedBytes }
        status.bufferCapacity = unix.queue
        status.slowDisconnects = slowDisconnects.load(ordering: .relaxed)
        return status
    }

    // MARK: Service

    public func run() async throws {
        do {
            try await gracefulShutdown()
            await shutdown(drain: true)
        } catch {
            await shutdown(drain: false)
        }
    }

    /// Startup failed elsewhere: close the socket and remove its file.
    func closeWithoutRunning() async {
        await shutdown(drain: false)
    }

    private func shutdown(drain: Bool) async {
        if let channel = listener.withLockedValue({ $0 }) {
            try? await channel.close()
        }
        removeOwnedPath()
        let deadline: NIODeadline? = drain ? .now() + Self.drainTimeout : nil
        let closed = shards.map { $0.closeAll(drainUntil: deadline) }
        for future in closed { try? await future.get() }
    }

    private func removeOwnedPath() {
        ownedPath.withLockedValue { value in defer { value = nil }; return value }?.remove()
    }
}

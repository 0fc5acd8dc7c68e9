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
    /// systemd's file descriptor store (disabled unless the unit has `FileDescriptorStoreMax=`).
    let fdStore: FileDescriptorStore
    /// This sink's part of its `StoredSocketName`s.
    let storeKey: String
    private let storeCounter = Atomic<UInt64>(0)
    /// The name the listening socket is stored under, when this sink stored it.
    private let storedListener = NIOLockedValueBox<String?>(nil)

    /// A subscriber connection taken back from the file descriptor store at startup.
    struct AdoptedSubscriber: Sendable {
        var fd: Int32
        var name: String
        var id: String
        var upstreams: [String]
    }
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
                 outbound: UpstreamOutbound, fdStore: FileDescriptorStore, name: String, logger: Logger,
                 onSubscribersChanged: @escaping @Sendable (Int) -> Void) {
        self.outbound = outbound
        self.fdStore = fdStore
        self.storeKey = StoredSocketName.sinkKey(unix)
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
        fdStore: FileDescriptorStore = .disabled, logger: Logger, onSubscribersChanged: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> UnixSocketSink {
        let activated = try pickInherited(unix: unix, inherited: &inherited)
        let name = activated.map { unix.listenFDName.map { "fd:\($0)" } ?? unix.path ?? "fd:\($0.fd)" } ?? unix.path ?? "?"
        let sink = UnixSocketSink(settings: settings, unix: unix, group: group, directory: directory, outbound: outbound,
                                  fdStore: fdStore, name: name, logger: logger,
                                  onSubscribersChanged: onSubscribersChanged)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelInitializer { [logger] channel in
                AcceptFailureBackoff.install(on: channel, label: "unix sink \(name)", logger: logger)
            }
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SubscriberHandler(sink: sink))
                }
            }
        if let activated {
            if let problem = SocketActivation.problemWithListeningSocket(activated.fd) {
                throw SetupError("unix sink \(name): inherited socket \"\(activated.name)\": \(problem)")
            }
            do {
                let channel = try await bootstrap.withBoundSocket(activated.fd).get()
                sink.listener.withLockedValue { $0 = channel }
            } catch {
                throw SetupError("unix sink \(name): cannot use the inherited socket \"\(activated.name)\": \(error)")
            }
            logger.info("unix sink \(name): using the socket passed by systemd", metadata: ["fd": "\(activated.fd)"])
            if case .listener? = StoredSocketName.parse(activated.name) {
                // Our own socket from the file descriptor store: still stored, and its path is ours to keep.
                sink.storedListener.withLockedValue { $0 = activated.name }
            }
            sink.adopt(inherited: &inherited, group: group)
            return sink
        }
        guard let path = unix.path else {
            throw SetupError("unix sink: listen_fd_name \"\(unix.listenFDName ?? "")\" was not passed by systemd (LISTEN_FDNAMES) and no path is set")
        }
        // With the file descriptor store the socket is bound here and given to NIO already listening: NIO
        // unlinks the path of a socket it bound itself when that channel closes, also at exit, and the next
        // process needs the path.
        var boundFD: Int32 = -1
        let (channel, owned) = try await UnixSocketPath.bindListener(
            path, role: "unix sink", mode: unix.mode, owner: unix.owner, group: unix.group, logger: logger,
            bind: {
                guard fdStore.isEnabled else { return try await bootstrap.bind(unixDomainSocketPath: path).get() }
                boundFD = try listeningSocket(at: path, backlog: 1024)
                return try await bootstrap.withBoundSocket(boundFD).get()
            },
            close: { try? await $0.close() })
        sink.listener.withLockedValue { $0 = channel }
        sink.ownedPath.withLockedValue { $0 = owned }
        if boundFD >= 0, let name = StoredSocketName.listener(sink: sink.storeKey).fdName, fdStore.store(boundFD, name: name) {
            sink.storedListener.withLockedValue { $0 = name }
        }
        sink.adopt(inherited: &inherited, group: group)
        return sink
    }

    /// Takes this sink's subscribers out of `inherited` (file descriptor store) and serves them again: each
    /// gets its filter back and a `restarted` line first.
    private func adopt(inherited: inout [SocketActivation.InheritedSocket], group: any EventLoopGroup) {
        var mine: [AdoptedSubscriber] = []
        inherited.removeAll { socket in
            guard case .subscriber(let sink, let id, let upstreams)? = StoredSocketName.parse(socket.name),
                  sink == storeKey else { return false }
            mine.append(AdoptedSubscriber(fd: socket.fd, name: socket.name, id: id, upstreams: upstreams))
            return true
        }
        guard !mine.isEmpty else { return }
        logger.notice("unix sink \(name): taking back \(mine.count) subscriber(s) kept by systemd across the restart")
        for subscriber in mine {
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SubscriberHandler(sink: self, adopted: subscriber))
                    }
                }
            bootstrap.withConnectedSocket(subscriber.fd).whenFailure { [self] error in
                logger.warning("unix sink \(name): cannot take back a stored subscriber: \(error)")
                close(subscriber.fd)
                fdStore.remove(name: subscriber.name)
            }
        }
    }

    /// A bound, listening `SOCK_STREAM` socket at `path` (the caller checked the path is free).
    private static func listeningSocket(at path: String, backlog: Int32) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        let rc = UnixSocketPath.withSocketAddress(path) { address, length in Glibc.bind(fd, address, length) }
        guard case .success(0) = rc, listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw IOError(errnoCode: code, reason: "bind")
        }
        return fd
    }

    /// A unique part for a new subscriber's stored name: this process and a counter.
    func nextStoreID() -> String {
        let n = storeCounter.add(1, ordering: .relaxed).newValue
        return String(getpid(), radix: 16) + "x" + String(n, radix: 16)
    }

    /// Socket activation: by `listen_fd_name`; otherwise an inherited socket already bound to `path`.
    private static func pickInherited(
        unix: UnixSinkSettings, inherited: inout [SocketActivation.InheritedSocket]
    ) throws(SetupError) -> SocketActivation.InheritedSocket? {
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
    func countDrops(_ n: Int) { dropped.add(UInt64(n), ordering: .relaxed) }
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
        // Handing over, a stored listening socket stays in the store and its path stays for the next process.
        let stored = storedListener.withLockedValue { $0 }
        if stored == nil || !fdStore.isHandingOver {
            if let stored { fdStore.remove(name: stored) }
            removeOwnedPath()
        } else {
            logger.info("unix sink \(name): the socket stays in systemd's file descriptor store for the next process")
        }
        let deadline: NIODeadline? = drain ? .now() + Self.drainTimeout : nil
        let closed = shards.map { $0.closeAll(drainUntil: deadline) }
        for future in closed { try? await future.get() }
    }

    private func removeOwnedPath() {
        ownedPath.withLockedValue { value in defer { value = nil }; return value }?.remove()
    }
}

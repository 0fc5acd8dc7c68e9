import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Numbers of one subscriber that status output reads from other threads.
final class SubscriberStats: Sendable {
    let credentials: PeerCredentials
    let connectedAt: WallClockTime
    let queueCapacity: Int
    let queued = Atomic<Int>(0)
    let bytesWritten = Atomic<UInt64>(0)
    let dropped = Atomic<UInt64>(0)
    /// Its `subscribe` list; empty means everything the socket carries.
    let upstreams = NIOLockedValueBox<[String]>([])

    init(credentials: PeerCredentials, connectedAt: WallClockTime, queueCapacity: Int) {
        self.credentials = credentials
        self.connectedAt = connectedAt
        self.queueCapacity = queueCapacity
    }

    var status: SubscriberStatus {
        SubscriberStatus(
            pid: credentials.pid, uid: credentials.uid, gid: credentials.gid, connectedAt: connectedAt,
            queuedBytes: queued.load(ordering: .relaxed), queueCapacity: queueCapacity,
            bytesWritten: bytesWritten.load(ordering: .relaxed), dropped: dropped.load(ordering: .relaxed),
            upstreams: upstreams.withLockedValue { $0 })
    }
}

/// One subscriber connection of a Unix socket sink, on its channel's event loop.
///
/// - On connect: reads `SO_PEERCRED`; a peer not in `allow_uids`/`allow_gids` gets an error line and is
///   closed. Otherwise it joins its loop's `SubscriberShard` and receives every line from then on.
/// - Outgoing: the lines of each batch it takes are written as slices of the shared batch buffer and flushed
///   once per batch. `SinkQueueStateMachine` counts the bytes not yet taken by the kernel (decremented when the
///   flush's write promise completes) and applies `slow_consumer`.
/// - Incoming: `{"subscribe":[...]}` lines narrow or widen what it receives (answered with
///   `{"ok":"subscribe","upstreams":[...]}`); anything else is answered with `{"error":"..."}` and ignored.
///   A line over 64 KiB is refused and skipped up to its newline. `{"send":...}` lines go upstream when the
///   sink has `allow_send` (`UpstreamOutbound`).
/// - File descriptor store (when systemd has one): the connection is stored under a name that carries its
///   subscribe list and removed when it leaves; one taken back after a restart starts with a `restarted` line.
final class SubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case starting, active, closed
    }

    private let sink: UnixSocketSink
    private var state = State.starting
    private var context: ChannelHandlerContext? = nil
    private var shard: SubscriberShard? = nil
    /// Position in the shard's array, for O(1) removal.
    var shardIndex = -1

    private var queue: SinkQueueStateMachine
    private var selection: UpstreamSelection
    private var stats: SubscriberStats? = nil
    private var credentials = PeerCredentials.unknown

    /// The last write of the current batch, held back so the flush can carry the accounting promise.
    private var heldWrite: ByteBuffer? = nil
    private var unflushedBytes = 0
    private var closeWhenEmpty = false

    private var input: ByteBuffer? = nil
    private var skippingLongLine = false

    /// File descriptor store (see `StoredSocketName`): the name this connection is stored under, its
    /// descriptor number once known, and the unique part of its name.
    private var storedName: String? = nil
    private var storedFD: Int32? = nil
    private var storeID: String
    private var lookingUpDescriptor = false
    /// The connection was taken over from the previous process (its descriptor came from the store).
    private let adopted: UnixSocketSink.AdoptedSubscriber?
    /// The last close was a clean handover: everything queued was written, no line is torn.
    private var handedOverCleanly = false

    init(sink: UnixSocketSink, adopted: UnixSocketSink.AdoptedSubscriber? = nil) {
        self.sink = sink
        self.queue = SinkQueueStateMachine(capacity: sink.unix.queue, slowConsumer: sink.unix.slowConsumer)
        self.selection = sink.selection
        self.adopted = adopted
        self.storeID = adopted?.id ?? sink.nextStoreID()
    }

    // MARK: Lifecycle

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        PeerCredentials.of(context.channel).assumeIsolated().whenComplete { result in
            self.start(credentials: (try? result.get()) ?? .unknown)
        }
        context.fireChannelActive()
    }

    private func start(credentials: PeerCredentials) {
        guard let context, state == .starting else { return }
        self.credentials = credentials
        guard credentials.isAllowed(uids: sink.unix.allowUIDs, gids: sink.unix.allowGIDs) else {
            sink.logger.warning("unix sink \(sink.name): refused a subscriber", metadata: [
                "pid": "\(credentials.pid)", "uid": "\(credentials.uid)", "gid": "\(credentials.gid)",
            ])
            state = .closed
            let line = SubscribeRequest.errorLine("permission denied: uid \(credentials.uid) is not allowed on this socket")
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: line))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            if let adopted { sink.fdStore.remove(name: adopted.name) }
            return
        }
        guard let shard = sink.shard(for: context.eventLoop), shard.add(self) else {
            state = .closed
            context.close(promise: nil)
            if let adopted { sink.fdStore.remove(name: adopted.name) }
            return
        }
        self.shard = shard
        let stats = SubscriberStats(credentials: credentials, connectedAt: .now(), queueCapacity: queue.capacity)
        self.stats = stats
        sink.subscriberJoined(stats)
        state = .active
        sink.logger.debug("unix sink \(sink.name): subscriber connected", metadata: [
            "pid": "\(credentials.pid)", "uid": "\(credentials.uid)", "adopted": "\(adopted != nil)",
        ])
        if let adopted {
            // Taken back from the store: it stays stored under its name; its filter comes with the name.
            storedName = adopted.name
            storedFD = adopted.fd
            if !adopted.upstreams.isEmpty { applySubscription(adopted.upstreams) }
            var buffer = ByteBufferAllocator().buffer(capacity: 96)
            var encoder = EnvelopeEncoder()
            encoder.appendRestarted(pid: getpid(), epochs: sink.fdStore.previousCounters?.nextEpochs, at: .now(), to: &buffer)
            queue.admitUnconditionally(buffer.readableBytes)
            write(buffer, bytes: buffer.readableBytes)
            flush()
        } else {
            updateStore()
        }
    }

    /// Keeps this connection in systemd's file descriptor store under the name that carries its current
    /// filter (a changed filter is a new name: the old one is removed, the descriptor stored again).
    private func updateStore() {
        guard sink.fdStore.isEnabled, state == .active, let context else { return }
        let wanted = StoredSocketName.subscriber(sink: sink.storeKey, id: storeID,
                                                 upstreams: stats?.upstreams.withLockedValue { $0 } ?? []).fdName
        guard wanted != storedName else { return }
        if let old = storedName {
            sink.fdStore.remove(name: old)
            storedName = nil
        }
        guard let wanted else {
            sink.logger.notice("unix sink \(sink.name): subscribe list too long for the file descriptor store; this subscriber is not kept across a restart")
            return
        }
        if let fd = storedFD {
            if sink.fdStore.store(fd, name: wanted) { storedName = wanted }
            return
        }
        guard !lookingUpDescriptor else { return }  // the lookup stores the name current when it finishes
        lookingUpDescriptor = true
        SocketCookie.of(context.channel).assumeIsolated().whenComplete { result in
            self.lookingUpDescriptor = false
            guard self.state == .active, let cookie = try? result.get(), let fd = SocketCookie.descriptor(of: cookie) else {
                self.sink.logger.warning("unix sink \(self.sink.name): cannot find a subscriber's descriptor for the file descriptor store")
                return
            }
            self.storedFD = fd
            self.updateStore()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
        self.context = nil
    }

    private func leave() {
        state = .closed
        if let name = storedName {
            // Kept for the next process only when the daemon is handing over and nothing is half-written.
            if !(sink.fdStore.isHandingOver && handedOverCleanly) { sink.fdStore.remove(name: name) }
            storedName = nil
        }
        shard?.remove(self)
        shard = nil
        heldWrite = nil
        if let stats {
            sink.subscriberLeft(stats)
            self.stats = nil
            sink.logger.debug("unix sink \(sink.name): subscriber disconnected", metadata: [
                "pid": "\(credentials.pid)", "uid": "\(credentials.uid)",
                "bytes_written": "\(stats.bytesWritten.load(ordering: .relaxed))",
                "dropped": "\(queue.totalDropped)",
            ])
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or broken pipe from a subscriber ends that subscriber, nothing else.
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The subscriber closed its sending side (`shutdown(SHUT_WR)`): keep sending to it.
        if let event = event as? ChannelEvent, event == .inputClosed { return }
        context.fireUserInboundEventTriggered(event)
    }

    /// Shutdown: close once the queue is empty (or at once with `force`).
    func closeWhenDrained(force: Bool) {
        guard let context, state != .closed else { return }
        flush()
        if force || queue.buffered == 0 {
            handedOverCleanly = queue.buffered == 0 && heldWrite == nil
            state = .closed
            context.close(promise: nil)
        } else {
            closeWhenEmpty = true
        }
    }

    // MARK: Outgoing

    func deliver(_ batch: EncodedBatch) {
        guard state == .active, !closeWhenEmpty else { return }
        let outcome = queue.admit(batch, selection: selection, events: sink.wantsEvents) { lines, bytes in
            write(lines, bytes: bytes)
        }
        if outcome.dropped > 0 {
            sink.countDrops(outcome.dropped)
            stats?.dropped.store(queue.totalDropped, ordering: .relaxed)
        }
        if outcome.disconnect {
            disconnectSlow()
            return
        }
        flush()
    }

    private func write(_ buffer: ByteBuffer, bytes: Int) {
        guard let context else { return }
        if let previous = heldWrite {
            context.write(wrapOutboundOut(previous), promise: nil)
        }
        heldWrite = buffer
        unflushedBytes += bytes
    }

    private func flush() {
        guard let context, let last = heldWrite else { return }
        heldWrite = nil
        let bytes = unflushedBytes
        unflushedBytes = 0
        stats?.queued.store(queue.buffered, ordering: .relaxed)
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { result in
            self.completed(bytes, success: (try? result.get()) != nil)
        }
        context.writeAndFlush(wrapOutboundOut(last), promise: promise)
    }

    private func completed(_ bytes: Int, success: Bool) {
        let drained = queue.written(bytes)
        if let stats {
            stats.queued.store(queue.buffered, ordering: .relaxed)
            if success { stats.bytesWritten.add(UInt64(bytes), ordering: .relaxed) }
        }
        if success { sink.countWritten(bytes) }
        guard state == .active else { return }
        if case .writeGaps(let gaps) = drained {
            let lines = queue.gapLines(gaps, names: sink.directory)
            write(lines, bytes: lines.readableBytes)
            flush()
        }
        if closeWhenEmpty && queue.buffered == 0 && heldWrite == nil {
            handedOverCleanly = true
            state = .closed
            context?.close(promise: nil)
        }
    }

    private func disconnectSlow() {
        guard let context else { return }
        state = .closed
        sink.countSlowDisconnect()
        sink.logger.warning("unix sink \(sink.name): disconnected a slow subscriber", metadata: [
            "pid": "\(credentials.pid)", "uid": "\(credentials.uid)",
            "queued_bytes": "\(queue.buffered)", "queue_limit": "\(queue.capacity)",
            "bytes_written": "\(stats?.bytesWritten.load(ordering: .relaxed) ?? 0)",
        ])
        heldWrite = nil
        unflushedBytes = 0
        context.close(promise: nil)
    }

    /// Replies and error lines: never dropped, and they count towards the queue.
    private func reply(_ line: [UInt8]) {
        guard state == .active || state == .starting else { return }
        queue.admitUnconditionally(line.count)
        write(ByteBuffer(bytes: line), bytes: line.count)
        flush()
    }

    // MARK: Incoming

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard state == .active else { return }
        if input == nil {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        processInput()
    }

    private func processInput() {
        while var buffer = input, buffer.readableBytes > 0 {
            guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
                if buffer.readableBytes > SubscribeRequest.maximumLineLength {
                    if !skippingLongLine { reply(SubscribeRequest.errorLine(SubscribeRequest.Failure.lineTooLong.description)) }
                    skippingLongLine = true
                    input = nil
                } else {
                    input = buffer
                }
                return
            }
            let length = newline - buffer.readerIndex
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            input = buffer.readableBytes > 0 ? buffer : nil
            if skippingLongLine {
                skippingLongLine = false
                continue
            }
            if line.readableBytes > SubscribeRequest.maximumLineLength {
                reply(SubscribeRequest.errorLine(SubscribeRequest.Failure.lineTooLong.description))
                continue
            }
            handleLine(line)
            guard state == .active else { return }
        }
        if input?.readableBytes == 0 { input = nil }
    }

    private func handleLine(_ line: ByteBuffer) {
        let view = line.readableBytesView
        if view.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        switch SubscribeRequest.parse(view) {
        case .failure(let failure):
            reply(SubscribeRequest.errorLine(failure.description))
        case .success(.subscribe(let names)):
            subscribe(names)
        case .success(.send(let request)):
            send(request)
        }
    }

    /// The way back: only on a socket with `allow_send`, only to an upstream this socket carries (the peer
    /// itself passed `allow_uids`/`allow_gids` when it connected, or it would not be `active`). Each request
    /// is answered with an ack or an error line that names its upstream.
    private func send(_ request: UpstreamSend) {
        guard sink.unix.allowSend else {
            reply(SubscribeRequest.sendErrorLine(request, .sendNotAllowed))
            return
        }
        let snapshot = sink.directory.snapshot
        guard let id = snapshot.id(of: request.upstream), sink.selection.contains(id) else {
            let carried = sink.selection.names(in: snapshot)
            let refusal: UpstreamSendRefusal = snapshot.id(of: request.upstream) == nil
                ? .unknownUpstream(name: request.upstream, known: carried)
                : .notCarried(name: request.upstream, carried: carried)
            reply(SubscribeRequest.sendErrorLine(request, refusal))
            return
        }
        sink.logger.info("unix sink \(sink.name): subscriber sends on \(request.upstream)", metadata: [
            "pid": "\(credentials.pid)", "uid": "\(credentials.uid)", "bytes": "\(request.size)",
            "persist": "\(request.persist)",
        ])
        guard let loop = context?.eventLoop else { return }
        sink.outbound.send(request, on: loop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let outcome):
                self.reply(SubscribeRequest.sendOKLine(request, outcome: outcome))
            case .failure(let error):
                self.reply(SubscribeRequest.sendErrorLine(request, error as? UpstreamSendRefusal ?? .persistFailed("\(error)")))
            }
        }
    }

    private func subscribe(_ names: [String]) {
        let snapshot = sink.directory.snapshot
        if names.isEmpty {
            selection = sink.selection
        } else {
            var ids: [UInt16] = []
            var unknown: [String] = []
            for name in names {
                if let id = snapshot.id(of: name), sink.selection.contains(id) { ids.append(id) } else { unknown.append(name) }
            }
            guard unknown.isEmpty else {
                let carried = sink.selection.names(in: snapshot)
                let list = unknown.map { "\"\($0)\"" }.joined(separator: ", ")
                reply(SubscribeRequest.errorLine(
                    "unknown upstream \(list); this socket carries: \(carried.joined(separator: ", "))"))
                return
            }
            selection = UpstreamSelection(ids: ids)
        }
        stats?.upstreams.withLockedValue { $0 = names }
        reply(SubscribeRequest.okLine(upstreams: selection.names(in: snapshot)))
        updateStore()
    }

    /// A filter restored from the file descriptor store: names this socket no longer carries are left out
    /// (none left means nothing, not everything: the subscriber asked for specific upstreams).
    private func applySubscription(_ names: [String]) {
        let snapshot = sink.directory.snapshot
        selection = UpstreamSelection(ids: names.compactMap { name in
            snapshot.id(of: name).flatMap { sink.selection.contains($0) ? $0 : nil }
        })
        stats?.upstreams.withLockedValue { $0 = names }
    }
}

import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// The NIO shell around one upstream's machines: `UpstreamConnectionSlots` (which wraps the
/// `UpstreamSupervisor` and knows which connection is current, successor or retiring) and the
/// `KeepaliveStateMachine` of the current connection. It turns connection callbacks (tagged with their
/// attempt's epoch), credential results and timers into events, and the machines' actions into I/O on the
/// connection each action names. It owns the per-upstream message sequence, so `seq` keeps growing across
/// reconnects.
///
/// Confined to one event loop (the one all its connections use); the public entry points hop onto it.
// @unchecked Sendable: every `var` is confined to `loop` (entry points hop onto it); `published` is a NIOLockedValueBox.
public final class UpstreamDriver: @unchecked Sendable, UpstreamFlowControl {
    public let settings: UpstreamSettings
    public let loop: any EventLoop
    private let consumer: any RelayEventConsumer
    private let flowControls: any UpstreamFlowControls
    private let credentials: (any AttemptCredentialSource)?
    private let logger: Logger
    private let onStatusChange: @Sendable () -> Void
    /// This upstream's traffic, shared with status, metrics and STATUS= (and with a driver that replaces this one).
    private let traffic: UpstreamTrafficCounters
    private let tlsContext: Result<NIOSSLContext, any Error>?
    /// How long a closing handshake may take (the server's backlog is still read and delivered meanwhile).
    private let closeTimeout: Duration
    private let proxy: ProxyTarget?
    /// Metric handles of this upstream (`RelayMetrics.upstream(named:)`); no-ops when metrics are off.
    private let metrics: UpstreamMetrics
    /// Messages local programs persisted (`UpstreamSend.persist`): sent after `subscribe` on every connect.
    private let persistedSends: PersistedSendStore?

    // Loop-confined state.
    private var slots: UpstreamConnectionSlots
    private var keepalive: KeepaliveStateMachine
    /// The live connections by epoch (the current one, a successor and the retiring ones).
    private var connections: [UInt64: UpstreamConnection] = [:]
    private var renewalTimer: Scheduled<Void>?
    private var supervisorTimer: Scheduled<Void>?
    /// The keepalive deadlines of all the loop's connections (coarse, never cancelled: see the wheel).
    private let keepaliveWheel: KeepaliveTimerWheel
    /// Bumped whenever the keepalive deadline changes or the current connection ends; a deadline armed
    /// under an older generation does nothing when it runs.
    private var keepaliveGeneration: UInt64 = 0
    private var authTimer: Scheduled<Void>?
    private var credentialRequest: UInt64 = 0
    private let credentialRequests = AsyncStream.makeStream(of: CredentialRequest.self)
    private var seq: UInt64 = 0
    private var pausers: Set<ObjectIdentifier> = []
    private let finishedPromise: EventLoopPromise<Void>
    /// Send requests handed to the supervisor and not yet answered.
    private var pendingSends: [UInt64: EventLoopPromise<UpstreamSendOutcome>] = [:]
    private var sendID: UInt64 = 0

    /// Keeps epochs growing across restarts (nil in tests that do not care).
    private let epochs: EpochReservation?
    /// Status, readable from any thread.
    private let published: NIOLockedValueBox<UpstreamState>

    public init(
        settings: UpstreamSettings,
        loop: any EventLoop,
        consumer: any RelayEventConsumer,
        flowControls: any UpstreamFlowControls,
        credentials: (any AttemptCredentialSource)?,
        tlsContext: Result<NIOSSLContext, any Error>?,
        closeTimeout: Duration = .seconds(5),
        proxy: ProxyTarget? = nil,
        logger: Logger,
        onStatusChange: @escaping @Sendable () -> Void,
        traffic: UpstreamTrafficCounters = UpstreamTrafficCounters(),
        metrics: UpstreamMetrics = .disabled,
        epochs: EpochReservation? = nil,
        persistedSends: PersistedSendStore? = nil
    ) {
        self.metrics = metrics
        self.persistedSends = persistedSends
        self.settings = settings
        self.loop = loop
        keepaliveWheel = KeepaliveTimerWheel.on(loop)
        self.consumer = consumer
        self.flowControls = flowControls
        self.credentials = credentials
        self.tlsContext = tlsContext
        var logger = logger
        logger[metadataKey: "upstream"] = "\(settings.name)"
        self.logger = logger
        self.onStatusChange = onStatusChange
        self.traffic = traffic
        self.closeTimeout = closeTimeout
        self.proxy = proxy
        self.slots = UpstreamConnectionSlots(supervisor: UpstreamSupervisor(settings: settings, closeTimeout: closeTimeout))
        self.epochs = epochs
        if let epochs { slots.startEpochs(after: epochs.base) }
        self.keepalive = KeepaliveStateMachine(settings: .init(settings))
        self.finishedPromise = loop.makePromise()
        self.published = NIOLockedValueBox(slots.supervisor.status)
    }

    /// A reload changed this upstream's settings and `previous` (now finished) ran it until now: this driver
    /// continues its sequence numbers, epochs and counters, so consumers see one gapless `seq` across the
    /// change. Call before `start()`.
    public func continueFrom(_ previous: UpstreamState) {
        onLoop { driver in
            driver.seq = previous.messages
            driver.slots.continueCounting(from: previous)
            let snapshot = driver.slots.supervisor.status
            driver.published.withLockedValue { $0 = snapshot }
            // The same counters after a reload; counts from before a restart through the fd store.
            driver.traffic.continueFrom(messages: previous.messages)
        }
    }

    /// Completes when the upstream is finished (after shutdown or removal).
    public var finished: EventLoopFuture<Void> { finishedPromise.futureResult }

    /// Messages received so far (what `status.messages` says, without copying the rest of the state).
    public var messagesReceived: UInt64 { traffic.messages }

    /// The published state with this upstream's traffic counters.
    public var status: UpstreamState {
        var state = published.withLockedValue { $0 }
        (state.messages, state.bytes, state.lastMessageAt) = (traffic.messages, traffic.bytes, traffic.lastMessageAt)
        return state
    }

    // MARK: - Commands (any thread)

    /// Registers as a flow control (so sinks under `on_full = "block"` can pause this
    /// upstream's reading) and starts connecting.
    public func start() {
        flowControls.register(upstream: settings.name, flowControl: self)
        onLoop { $0.handle(.supervisor(.start(now: .now))) }
    }
    public func shutdown() { onLoop { $0.handle(.supervisor(.shutdown(now: .now))) } }
    public func remove() { onLoop { $0.handle(.supervisor(.removed(now: .now))) } }
    public func pause() { onLoop { $0.handle(.supervisor(.pause(now: .now))) } }
    public func resume() { onLoop { $0.handle(.supervisor(.resume(now: .now))) } }
    public func reconnect() { onLoop { $0.handle(.supervisor(.reconnectRequested(now: .now))) } }

    /// Pings the open connection now (after a suspend/resume): a dead peer is found within the pong timeout
    /// instead of up to a whole ping interval later.
    public func pingNow() {
        onLoop { driver in
            guard let epoch = driver.slots.currentEpoch, driver.connections[epoch] != nil,
                  driver.slots.supervisor.status.phase == .open else { return }
            driver.apply(driver.keepalive.handle(.pingNow(now: .now)))
        }
    }

    /// Hands a send request to the supervisor (see `UpstreamSupervisor.Event.send`). `persisted`: the message
    /// is already in the persisted list. Fails with `UpstreamSendRefusal`.
    public func send(_ message: OutgoingMessage, persisted: Bool) -> EventLoopFuture<UpstreamSendOutcome> {
        let promise = loop.makePromise(of: UpstreamSendOutcome.self)
        onLoop { driver in
            driver.sendID &+= 1
            let id = driver.sendID
            driver.pendingSends[id] = promise
            driver.handle(.supervisor(.send(id: id, message: message, persisted: persisted, now: .now)))
            // The supervisor answers every send in the same step; this only guards against a bug there.
            driver.pendingSends.removeValue(forKey: id)?.fail(UpstreamSendRefusal.unavailable)
        }
        return promise.futureResult
    }

    public func pause(by token: ObjectIdentifier) {
        onLoop { driver in
            let wasReading = driver.pausers.isEmpty
            driver.pausers.insert(token)
            if wasReading {
                for connection in driver.connections.values { connection.setReading(false) }
            }
        }
    }

    public func resume(by token: ObjectIdentifier) {
        onLoop { driver in
            guard driver.pausers.remove(token) != nil, driver.pausers.isEmpty else { return }
            for connection in driver.connections.values { connection.setReading(true) }
        }
    }

    private func onLoop(_ body: @escaping @Sendable (UpstreamDriver) -> Void) {
        if loop.inEventLoop { body(self) } else { loop.execute { body(self) } }
    }

    // MARK: - The machines

    private func handle(_ event: UpstreamConnectionSlots.Event) {
        loop.preconditionInEventLoop()
        let before = slots.supervisor.status.phase
        let actions = slots.handle(event)
        for action in actions { perform(action) }
        publish(phaseChangedFrom: before)
    }

    private func perform(_ action: UpstreamConnectionSlots.Action) {
        switch action {
        case .fetchCredentials(let rejected):
            fetchCredentials(rejected: rejected)
        case .connect(let epoch, let credential, let successor):
            connect(epoch: epoch, credential: credential, asSuccessor: successor)
        case .abandon(let epoch, let reason):
            if let connection = connections.removeValue(forKey: epoch) {
                connection.delegate = nil
                connection.abort(code: CloseCode.goingAway, reason: reason)
            }
        case .forget(let epoch):
            connections.removeValue(forKey: epoch)?.delegate = nil
        case .close(let epoch, let code, let reason):
            connections[epoch]?.close(code: code, reason: reason)
        case .abort(let epoch, let code, let reason):
            connections[epoch]?.abort(code: code, reason: reason)
        case .opened(let epoch):
            guard let connection = connections[epoch] else { return }
            consumer.deliver([.connected(upstream: settings.name, epoch: epoch, at: .now())])
            logger.debug("upgrade complete", metadata: [
                "epoch": "\(epoch)", "subprotocol": "\(connection.subprotocol ?? "none")",
                "compression": "\(connection.compression?.description ?? "none")",
            ])
            published.withLockedValue { state in
                state.compression = connection.compression
                state.compressionStats = connection.compressionStats
            }
            keepalive = KeepaliveStateMachine(settings: .init(settings))
            apply(keepalive.handle(.opened(now: .now)))
            if !pausers.isEmpty { connection.setReading(false) }
        case .announceClosed(let epoch, let info):
            connections[epoch] = nil
            consumer.deliver([.disconnected(upstream: settings.name, epoch: epoch, code: info.code, reason: info.reason, at: .now())])
        case .endCurrent:
            keepaliveGeneration &+= 1
            authTimer?.cancel()
            renewalTimer?.cancel()
            published.withLockedValue { state in
                state.compression = nil
                state.compressionStats = nil
            }
        case .transmit(let epoch, let message):
            connections[epoch]?.send(message)
            logger.info("sent a message on request", metadata: ["epoch": "\(epoch)", "bytes": "\(message.size)"])
        case .sendAuthMessage(let epoch, let message):
            connections[epoch]?.send(.text(message))
        case .sendSubscriptions(let epoch):
            guard let connection = connections[epoch] else { return }
            for message in settings.subscribe { connection.send(message) }
            for message in persistedSends?.messages(for: settings.name) ?? [] { connection.send(message) }
        case .armAuthTimeout(let epoch, let timeout):
            authTimer?.cancel()
            authTimer = schedule(.now + timeout) { $0.handle(.authTimedOut(epoch: epoch)) }
        case .cancelAuthTimeout:
            authTimer?.cancel()
        case .armRenewal(let epoch, let delay):
            renewalTimer?.cancel()
            logger.debug("token rotation scheduled", metadata: ["epoch": "\(epoch)", "in": "\(delay)"])
            renewalTimer = schedule(.now + delay) { $0.handle(.renewalDue(epoch: epoch, now: .now)) }
        case .scheduleTimer(let at):
            supervisorTimer?.cancel()
            supervisorTimer = schedule(at) { $0.handle(.supervisor(.timerFired(now: .now))) }
        case .cancelTimer:
            supervisorTimer?.cancel()
            supervisorTimer = nil
        case .log(let level, let message):
            logger.log(level: level, "\(message)")
        case .answerSend(let id, let result):
            pendingSends.removeValue(forKey: id)?.completeWith(result.mapError { $0 as any Error })
        case .finished:
            credentialRequests.continuation.finish()
            supervisorTimer?.cancel()
            flowControls.unregister(upstream: settings.name, flowControl: self)
            finishedPromise.succeed()
        }
    }

    private func fetchCredentials(rejected: UInt64?) {
        guard credentials != nil else {
            handle(.credentialReady(nil, now: .now))
            return
        }
        credentialRequest &+= 1
        credentialRequests.continuation.yield(CredentialRequest(id: credentialRequest, rejected: rejected))
    }

    /// One credential fetch asked for by the supervisor; `id` lets a late answer to a superseded request
    /// (after pause or shutdown) be ignored.
    struct CredentialRequest: Sendable {
        var id: UInt64
        var rejected: UInt64?
    }

    /// Runs the credential fetches the supervisor asks for, one after the other, for as long as the caller's
    /// task lives (`UpstreamService.run` owns it, so no fetch outlives the upstream).
    func serveCredentialRequests() async {
        guard let credentials else { return }
        for await request in credentialRequests.stream {
            let result: Result<AttemptCredential, any Error>
            do {
                result = .success(try await credentials.credential(rejected: request.rejected))
            } catch {
                result = .failure(error)
            }
            onLoop { driver in
                guard request.id == driver.credentialRequest else { return }  // superseded (pause, shutdown)
                switch result {
                case .success(let credential):
                    driver.handle(.credentialReady(credential, now: .now))
                case .failure(let error):
                    driver.handle(.supervisor(.credentialsFailed(reason: "\(error)", now: .now)))
                }
            }
        }
    }

    private func connect(epoch: UInt64, credential: AttemptCredential?, asSuccessor: Bool) {
        if DescriptorReserve.process.isScarce {
            // The few free descriptors are left to the libraries until more are free (see DescriptorReserve).
            handle(.failedToOpen(epoch: epoch, .connect("out of file descriptors (too many open files): not connecting until some are free"),
                                 retryAfter: nil, now: .now))
            return
        }
        epochs?.reserve(through: epoch)
        var request = HandshakeRequest(settings: settings)
        credential?.apply(&request)
        var context: NIOSSLContext?
        if settings.url.secure {
            switch tlsContext {
            case .success(let value)?:
                context = value
            case .failure(let error)?:
                handle(.failedToOpen(epoch: epoch, .connect("TLS setup: \(error)"), retryAfter: nil, now: .now))
                return
            case nil:
                handle(.failedToOpen(epoch: epoch, .connect("TLS setup missing"), retryAfter: nil, now: .now))
                return
            }
            if settings.tls.insecureSkipVerify {
                logger.warning("tls.insecure_skip_verify is set: the server's certificate is NOT verified")
            }
        }
        var options = UpstreamConnection.Options()
        options.connectTimeout = settings.connectTimeout
        options.handshakeTimeout = settings.handshakeTimeout
        options.maxMessageSize = settings.maxMessageSize
        options.closeTimeout = closeTimeout
        options.proxy = proxy
        let connection = UpstreamConnection(
            loop: loop,
            request: request,
            tls: context,
            serverName: TLSContextFactory.serverNameIndication(host: settings.url.host, override: settings.tls.serverName),
            options: options
        )
        connection.delegate = EpochTag(driver: self, epoch: epoch)
        connections[epoch] = connection
        logger.debug("connecting", metadata: [
            "epoch": "\(epoch)", "url": "\(settings.url)", "proxy": "\(proxy?.description ?? "none")",
            "token": "\(credential?.fingerprint ?? "none")", "successor": "\(asSuccessor)",
        ])
        connection.start()
        if !pausers.isEmpty { connection.setReading(false) }
    }

    // MARK: - Connection callbacks (loop)

    fileprivate func opened(epoch: UInt64) {
        handle(.opened(epoch: epoch, now: .now, wallNow: .now()))
    }

    fileprivate func received(_ messages: [InboundMessage], epoch: UInt64) {
        guard slots.delivers(epoch) else { return }
        if slots.awaitsAuthReply(on: epoch) {
            for message in messages where message.kind == .text {
                handle(.textReceived(epoch: epoch, String(buffer: message.payload)))
                if !slots.awaitsAuthReply(on: epoch) { break }
            }
        }
        var events: [RelayEvent] = []
        events.reserveCapacity(messages.count)
        var bytes = 0
        for message in messages {
            seq &+= 1
            bytes += message.payload.readableBytes
            events.append(.message(ReceivedMessage(
                upstream: settings.name, epoch: epoch, seq: seq, receivedAt: message.receivedAt,
                kind: message.kind, payload: message.payload)))
        }
        consumer.deliver(events)
        traffic.record(messages: UInt64(messages.count), bytes: UInt64(bytes))
        if epoch == slots.currentEpoch, let compressionStats = connections[epoch]?.compressionStats {
            published.withLockedValue { $0.compressionStats = compressionStats }
        }
    }

    fileprivate func pong(_ payload: ByteBuffer, epoch: UInt64) {
        guard epoch == slots.currentEpoch else { return }
        apply(keepalive.handle(.pongReceived(payload: Array(payload.readableBytesView), now: .now)))
    }

    fileprivate func failedToOpen(_ failure: ConnectionFailure, epoch: UInt64) {
        connections[epoch] = nil
        let retryAfter = failure.header("Retry-After").flatMap { RetryAfter.parse($0, now: Date()) }
        handle(.failedToOpen(epoch: epoch, failure, retryAfter: retryAfter, now: .now))
    }

    fileprivate func closed(_ info: ConnectionCloseInfo, epoch: UInt64) {
        handle(.closed(epoch: epoch, info, now: .now))
    }

    // MARK: - Keepalive

    private func apply(_ output: KeepaliveStateMachine.Output) {
        let epoch = slots.currentEpoch
        for action in output.actions {
            switch action {
            case .sendPing(let payload):
                epoch.flatMap { connections[$0] }?.sendPing(payload)
            case .sendAppPing(let text):
                epoch.flatMap { connections[$0] }?.send(.text(text))
            case .recordRTT(let rtt):
                published.withLockedValue { $0.lastPongRTT = rtt }
                metrics.recordPingRTT(rtt)
            case .declareDead(let reason):
                guard let epoch else { break }
                handle(.keepaliveDead(epoch: epoch, reason, now: .now))
            }
        }
        keepaliveGeneration &+= 1
        if let next = output.nextDeadline, let epoch {
            let generation = keepaliveGeneration
            keepaliveWheel.schedule(at: Self.nioDeadline(next)) { [weak self] in
                guard let driver = self, driver.keepaliveGeneration == generation,
                      driver.slots.currentEpoch == epoch, let connection = driver.connections[epoch] else { return }
                // Frames are counted by the connection; the machine learns of them only when it wakes.
                let lastFrame = ContinuousClock.now - Duration.nanoseconds((NIODeadline.now() - connection.lastFrameAt).nanoseconds)
                _ = driver.keepalive.handle(.frameReceived(now: lastFrame))
                driver.apply(driver.keepalive.handle(.timerFired(now: .now)))
            }
        }
    }

    // MARK: - Helpers

    private func schedule(_ at: ContinuousClock.Instant, _ body: @escaping (UpstreamDriver) -> Void) -> Scheduled<Void> {
        loop.assumeIsolated().scheduleTask(deadline: Self.nioDeadline(at)) { [self] in body(self) }
    }

    /// The machines' instants (ContinuousClock) as NIO deadlines; one already past is now.
    private static func nioDeadline(_ at: ContinuousClock.Instant) -> NIODeadline {
        .now() + .nanoseconds(max(.zero, at - ContinuousClock.now).nanosecondsClamped)
    }

    private func publish(phaseChangedFrom before: UpstreamState.Phase) {
        let snapshot = slots.supervisor.status
        let previous = published.withLockedValue { $0 }  // metrics count what changed
        let changed = published.withLockedValue { state -> Bool in
            let kept = (state.lastPongRTT, state.compression, state.compressionStats)
            state = snapshot
            (state.lastPongRTT, state.compression, state.compressionStats) = kept
            return before != snapshot.phase
        }
        metrics.observe(from: previous, to: snapshot)
        if changed { onStatusChange() }
    }
}

/// The delegate of one connection attempt: tags every callback with the attempt's epoch, which is all the
/// driver (and `UpstreamConnectionSlots`) needs to tell a current connection from a superseded one.
private final class EpochTag: UpstreamConnectionDelegate {
    let driver: UpstreamDriver
    let epoch: UInt64

    init(driver: UpstreamDriver, epoch: UInt64) {
        self.driver = driver
        self.epoch = epoch
    }

    func connectionDidOpen(_ connection: UpstreamConnection, subprotocol: String?) {
        driver.opened(epoch: epoch)
    }

    func connection(_ connection: UpstreamConnection, didReceive messages: [InboundMessage]) {
        driver.received(messages, epoch: epoch)
    }

    func connection(_ connection: UpstreamConnection, didReceivePong payload: ByteBuffer) {
        driver.pong(payload, epoch: epoch)
    }

    func connection(_ connection: UpstreamConnection, didFailToOpen failure: ConnectionFailure) {
        driver.failedToOpen(failure, epoch: epoch)
    }

    func connection(_ connection: UpstreamConnection, didClose info: ConnectionCloseInfo) {
        driver.closed(info, epoch: epoch)
    }
}

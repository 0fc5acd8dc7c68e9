import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// Gives an upstream a fresh credential for each connection attempt. Implemented by the credentials layer;
/// the driver only knows that an attempt needs one and that a rejection names the generation it used.
public protocol AttemptCredentialSource: Sendable {
    /// A token for the next attempt. `rejected`: the generation of the token the previous attempt used and
    /// the server refused; the source refreshes only if nothing newer exists.
    func credential(rejected: UInt64?) async throws -> AttemptCredential
}

/// What one attempt carries: the request changes (header, query, subprotocol, cookie), or a message to send
/// first, plus the generation so a rejection can name exactly this token. Printing it shows the fingerprint
/// only: `authMessage` contains the token.
public struct AttemptCredential: Sendable, CustomStringConvertible, CustomReflectable {
    public var generation: UInt64
    public var fingerprint: String
    public var apply: @Sendable (inout HandshakeRequest) -> Void
    /// For `placement = "message"`: sent as the first message after the upgrade.
    public var authMessage: String?
    public var authOKPattern: String?
    public var authTimeout: Duration?
    /// When a connection made with this credential should be rotated (`reconnect_before_expiry`): the
    /// token's expiry minus the auth's `refresh_skew`; nil when the expiry is unknown.
    public var renewAt: WallClockTime?

    public init(generation: UInt64, fingerprint: String, apply: @escaping @Sendable (inout HandshakeRequest) -> Void,
                authMessage: String? = nil, authOKPattern: String? = nil, authTimeout: Duration? = nil,
                renewAt: WallClockTime? = nil) {
        self.renewAt = renewAt
        self.generation = generation
        self.fingerprint = fingerprint
        self.apply = apply
        self.authMessage = authMessage
        self.authOKPattern = authOKPattern
        self.authTimeout = authTimeout
    }

    public var description: String { "AttemptCredential(generation: \(generation), token: \(fingerprint))" }
    public var customMirror: Mirror { Mirror(self, children: ["generation": generation, "token": fingerprint]) }
}

/// The NIO shell around one upstream's `UpstreamSupervisor` and the `KeepaliveStateMachine` of its open
/// connection: it turns connection callbacks, credential results and timers into events, and the machines'
/// actions into I/O. It owns the per-upstream message sequence, so `seq` keeps growing across reconnects.
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
    private let onMessages: @Sendable (UInt64) -> Void
    private let tlsContext: Result<NIOSSLContext, any Error>?
    /// How long a closing handshake may take (the server's backlog is still read and delivered meanwhile).
    private let closeTimeout: Duration
    private let proxy: ProxyTarget?
    /// Metric handles of this upstream (`RelayMetrics.upstream(named:)`); no-ops when metrics are off.
    private let metrics: UpstreamMetrics
    /// Messages local programs persisted (`UpstreamSend.persist`): sent after `subscribe` on every connect.
    private let persistedSends: PersistedSendStore?

    // Loop-confined state.
    private var supervisor: UpstreamSupervisor
    private var keepalive: KeepaliveStateMachine
    private var connection: UpstreamConnection?
    private var connectionEpoch: UInt64 = 0
    /// Token rotation: the attempt opening alongside `connection` (`connectSuccessor`).
    private var successor: UpstreamConnection?
    private var successorEpoch: UInt64 = 0
    /// Token rotation: the previous connection, closing after its successor opened; still delivered.
    private var retiring: UpstreamConnection?
    private var retiringEpoch: UInt64 = 0
    private var renewalTimer: Scheduled<Void>?
    private var supervisorTimer: Scheduled<Void>?
    private var keepaliveTimer: Scheduled<Void>?
    private var authTimer: Scheduled<Void>?
    private var pendingCredential: AttemptCredential?
    private var lastCredentialGeneration: UInt64?
    private var credentialRequest: UInt64 = 0
    private let credentialRequests = AsyncStream.makeStream(of: CredentialRequest.self)
    private var seq: UInt64 = 0
    private var pausers: Set<ObjectIdentifier> = []
    private var awaitingAuthOK: String?
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
        onMessages: @escaping @Sendable (UInt64) -> Void,
        metrics: UpstreamMetrics = .disabled,
        epochs: EpochReservation? = nil,
        persistedSends: PersistedSendStore? = nil
    ) {
        self.metrics = metrics
        self.persistedSends = persistedSends
        self.settings = settings
        self.loop = loop
        self.consumer = consumer
        self.flowControls = flowControls
        self.credentials = credentials
        self.tlsContext = tlsContext
        var logger = logger
        logger[metadataKey: "upstream"] = "\(settings.name)"
        self.logger = logger
        self.onStatusChange = onStatusChange
        self.onMessages = onMessages
        self.closeTimeout = closeTimeout
        self.proxy = proxy
        self.supervisor = UpstreamSupervisor(settings: settings, closeTimeout: closeTimeout)
        self.epochs = epochs
        if let epochs { supervisor.startEpochs(after: epochs.base) }
        self.keepalive = KeepaliveStateMachine(settings: .init(settings))
        self.finishedPromise = loop.makePromise()
        self.published = NIOLockedValueBox(supervisor.status)
    }

    /// A reload changed this upstream's settings and `previous` (now finished) ran it until now: this driver
    /// continues its sequence numbers, epochs and counters, so consumers see one gapless `seq` across the
    /// change. Call before `start()`.
    public func continueFrom(_ previous: UpstreamState) {
        onLoop { driver in
            driver.seq = previous.messages
            driver.supervisor.continueCounting(from: previous)
            let snapshot = driver.supervisor.status
            driver.published.withLockedValue { state in
                state = snapshot
                state.messages = previous.messages
                state.bytes = previous.bytes
                state.lastMessageAt = previous.lastMessageAt
            }
        }
    }

    /// Completes when the upstream is finished (after shutdown or removal).
    public var finished: EventLoopFuture<Void> { finishedPromise.futureResult }

    public var status: UpstreamState { published.withLockedValue { $0 } }

    // MARK: - Commands (any thread)

    /// Registers as a flow control (so sinks under `on_full = "block"` can pause this
    /// upstream's reading) and starts connecting.
    public func start() {
        flowControls.register(upstream: settings.name, flowControl: self)
        onLoop { $0.handle(.start(now: .now)) }
    }
    public func shutdown() { onLoop { $0.handle(.shutdown(now: .now)) } }
    public func remove() { onLoop { $0.handle(.removed(now: .now)) } }
    public func pause() { onLoop { $0.handle(.pause(now: .now)) } }
    public func resume() { onLoop { $0.handle(.resume(now: .now)) } }
    public func reconnect() { onLoop { $0.handle(.reconnectRequested(now: .now)) } }

    /// Pings the open connection now (after a suspend/resume): a dead peer is found within the pong timeout
    /// instead of up to a whole ping interval later.
    public func pingNow() {
        onLoop { driver in
            guard driver.connection != nil, driver.supervisor.status.phase == .open else { return }
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
            driver.handle(.send(id: id, message: message, persisted: persisted, now: .now))
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
                for connection in [driver.connection, driver.successor, driver.retiring] { connection?.setReading(false) }
            }
        }
    }

    public func resume(by token: ObjectIdentifier) {
        onLoop { driver in
            guard driver.pausers.remove(token) != nil, driver.pausers.isEmpty else { return }
            for connection in [driver.connection, driver.successor, driver.retiring] { connection?.setReading(true) }
        }
    }

    private func onLoop(_ body: @escaping @Sendable (UpstreamDriver) -> Void) {
        if loop.inEventLoop { body(self) } else { loop.execute { body(self) } }
    }

    // MARK: - The machines

    private func handle(_ event: UpstreamSupervisor.Event) {
        loop.preconditionInEventLoop()
        let before = supervisor.status.phase
        let actions = supervisor.handle(event)
        for action in actions { perform(action) }
        publish(phaseChangedFrom: before)
    }

    private func perform(_ action: UpstreamSupervisor.Action) {
        switch action {
        case .fetchCredentials(let forceRefresh):
            fetchCredentials(rejected: forceRefresh ? lastCredentialGeneration : nil)
        case .connect(let epoch):
            connect(epoch: epoch)
        case .connectSuccessor(let epoch):
            connect(epoch: epoch, asSuccessor: true)
        case .abortSuccessor:
            if let successor {
                successor.delegate = nil
                successor.abort(code: CloseCode.goingAway, reason: "connection abandoned")
            }
            successor = nil
        case .retire(let epoch, let code, let reason):
            if let retiring, retiringEpoch == epoch { retiring.close(code: code, reason: reason) }
        case .sendClose(let code, let reason):
            connection?.close(code: code, reason: reason)
        case .abortConnection:
            connection?.abort(code: CloseCode.goingAway, reason: "connection abandoned")
        case .scheduleTimer(let at):
            supervisorTimer?.cancel()
            supervisorTimer = schedule(at) { $0.handle(.timerFired(now: .now)) }
        case .cancelTimer:
            supervisorTimer?.cancel()
            supervisorTimer = nil
        case .log(let level, let message):
            logger.log(level: level, "\(message)")
        case .finished:
            credentialRequests.continuation.finish()
            supervisorTimer?.cancel()
            keepaliveTimer?.cancel()
            authTimer?.cancel()
            renewalTimer?.cancel()
            connection?.delegate = nil
            connection = nil
            successor?.delegate = nil
            successor?.abort(code: CloseCode.goingAway, reason: "connection abandoned")
            successor = nil
            retiring?.delegate = nil
            retiring = nil
            flowControls.unregister(upstream: settings.name, flowControl: self)
            finishedPromise.succeed()
        case .transmit(let message):
            connection?.send(message)
            logger.info("sent a message on request", metadata: ["epoch": "\(connectionEpoch)", "bytes": "\(message.size)"])
        case .answerSend(let id, let result):
            pendingSends.removeValue(forKey: id)?.completeWith(result.mapError { $0 as any Error })
        }
    }

    private func fetchCredentials(rejected: UInt64?) {
        guard credentials != nil else {
            handle(.credentialsReady(now: .now))
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
                    driver.pendingCredential = credential
                    driver.handle(.credentialsReady(now: .now))
                case .failure(let error):
                    driver.handle(.credentialsFailed(reason: "\(error)", now: .now))
                }
            }
        }
    }

    private func connect(epoch: UInt64, asSuccessor: Bool = false) {
        epochs?.reserve(through: epoch)
        if asSuccessor {
            if let old = successor {
                old.delegate = nil
                old.abort(code: CloseCode.goingAway, reason: "superseded")
            }
        } else {
            for old in [connection, successor].compactMap({ $0 }) {
                old.delegate = nil
                old.abort(code: CloseCode.goingAway, reason: "superseded")
            }
            successor = nil
            keepaliveTimer?.cancel()
            authTimer?.cancel()
            renewalTimer?.cancel()
            awaitingAuthOK = nil
        }
        var request = HandshakeRequest(settings: settings)
        let credential = pendingCredential
        pendingCredential = nil
        if let credential {
            credential.apply(&request)
            lastCredentialGeneration = credential.generation
        }
        var context: NIOSSLContext?
        if settings.url.secure {
            switch tlsContext {
            case .success(let value)?:
                context = value
            case .failure(let error)?:
                handle(.connectFailed(error: "TLS setup: \(error)", now: .now))
                return
            case nil:
                handle(.connectFailed(error: "TLS setup missing", now: .now))
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
        connection.delegate = ConnectionEvents(driver: self, epoch: epoch, authMessage: credential?.authMessage,
                                               authOKPattern: credential?.authOKPattern,
                                               authTimeout: credential?.authTimeout,
                                               renewAt: credential?.renewAt)
        if asSuccessor {
            successor = connection
            successorEpoch = epoch
        } else {
            self.connection = connection
            connectionEpoch = epoch
        }
        logger.debug("connecting", metadata: [
            "epoch": "\(epoch)", "url": "\(settings.url)", "proxy": "\(proxy?.description ?? "none")",
            "token": "\(credential?.fingerprint ?? "none")", "successor": "\(asSuccessor)",
        ])
        connection.start()
        if !pausers.isEmpty { connection.setReading(false) }
    }

    // MARK: - Connection callbacks (loop)

    fileprivate func opened(_ connection: UpstreamConnection, epoch: UInt64, events: ConnectionEvents) {
        if let successor, epoch == successorEpoch, successor === connection {
            // Token rotation: the successor becomes the current connection; the old one retires (the
            // supervisor's `retire` action closes it) and is still delivered until it is gone.
            if let old = retiring {
                old.delegate = nil
                old.abort(code: CloseCode.goingAway, reason: "superseded")
            }
            retiring = self.connection
            retiringEpoch = connectionEpoch
            self.connection = successor
            connectionEpoch = successorEpoch
            self.successor = nil
            keepaliveTimer?.cancel()
            authTimer?.cancel()
            renewalTimer?.cancel()
            awaitingAuthOK = nil
        }
        guard epoch == connectionEpoch else { return }
        let now = ContinuousClock.now
        scheduleRenewal(at: events.renewAt, epoch: epoch)
        consumer.deliver([.connected(upstream: settings.name, epoch: epoch, at: .now())])
        logger.debug("upgrade complete", metadata: [
            "epoch": "\(epoch)", "subprotocol": "\(connection.subprotocol ?? "none")",
            "compression": "\(connection.compression?.description ?? "none")",
        ])
        handle(.connected(now: now))
        published.withLockedValue { state in
            state.compression = connection.compression
            state.compressionStats = connection.compressionStats
        }
        keepalive = KeepaliveStateMachine(settings: .init(settings))
        apply(keepalive.handle(.opened(now: now)))
        if !pausers.isEmpty { connection.setReading(false) }
        if let message = events.authMessage {
            connection.send(.text(message))
            if let pattern = events.authOKPattern {
                awaitingAuthOK = pattern
                let timeout = events.authTimeout ?? .seconds(10)
                authTimer = schedule(now + timeout) { driver in
                    guard driver.awaitingAuthOK != nil, driver.connectionEpoch == epoch else { return }
                    driver.logger.warning("no auth reply matching auth_ok within \(timeout)")
                    driver.connection?.close(code: CloseCode.policyViolation, reason: "auth timeout")
                }
                return  // subscribe messages wait for the auth reply
            }
        }
        sendSubscriptions(connection)
    }

    private func sendSubscriptions(_ connection: UpstreamConnection) {
        for message in settings.subscribe { connection.send(message) }
        for message in persistedSends?.messages(for: settings.name) ?? [] { connection.send(message) }
    }

    fileprivate func received(_ messages: [InboundMessage], epoch: UInt64) {
        guard epoch == connectionEpoch || (retiring != nil && epoch == retiringEpoch) else { return }
        if epoch == connectionEpoch, let pattern = awaitingAuthOK, let connection {
            for message in messages where message.kind == .text {
                if message.payload.getString(at: message.payload.readerIndex, length: message.payload.readableBytes)?
                    .contains(pattern) == true {
                    awaitingAuthOK = nil
                    authTimer?.cancel()
                    sendSubscriptions(connection)
                    break
                }
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
        let count = UInt64(messages.count)
        let last = ContinuousClock.now
        let compressionStats = epoch == connectionEpoch ? connection?.compressionStats : nil
        published.withLockedValue { state in
            state.messages &+= count
            state.bytes &+= UInt64(bytes)
            state.lastMessageAt = last
            if let compressionStats { state.compressionStats = compressionStats }
        }
        metrics.received(messages: messages.count, bytes: bytes)
        onMessages(count)
    }

    fileprivate func pong(_ payload: ByteBuffer, epoch: UInt64) {
        guard epoch == connectionEpoch else { return }
        apply(keepalive.handle(.pongReceived(payload: Array(payload.readableBytesView), now: .now)))
    }

    fileprivate func failedToOpen(_ failure: ConnectionFailure, epoch: UInt64) {
        if successor != nil, epoch == successorEpoch {
            successor = nil  // the current connection stays; the supervisor retries the rotation later
        } else {
            guard epoch == connectionEpoch else { return }
            connection = nil
        }
        switch failure {
        case .upgradeRejected(let status, _, _):
            let retryAfter = failure.header("Retry-After").flatMap { RetryAfter.parse($0, now: Date()) }
            handle(.upgradeFailed(status: status, retryAfter: retryAfter, now: .now))
        case .connect(let text), .handshake(let text):
            handle(.connectFailed(error: text, now: .now))
        }
    }

    fileprivate func closed(_ info: ConnectionCloseInfo, epoch: UInt64) {
        consumer.deliver([.disconnected(upstream: settings.name, epoch: epoch, code: info.code, reason: info.reason, at: .now())])
        if retiring != nil, epoch == retiringEpoch {
            retiring = nil
            logger.info("retired connection closed: \(info)", metadata: ["epoch": "\(epoch)"])
            return
        }
        guard epoch == connectionEpoch else { return }
        connection = nil
        published.withLockedValue { state in
            state.compression = nil
            state.compressionStats = nil
        }
        keepaliveTimer?.cancel()
        authTimer?.cancel()
        renewalTimer?.cancel()
        awaitingAuthOK = nil
        if let successor {
            // The old connection ended during a rotation: the successor carries on as the current attempt.
            connection = successor
            connectionEpoch = successorEpoch
            self.successor = nil
        }
        logger.log(level: info.initiator == .local ? .info : .warning, "disconnected: \(info)", metadata: ["epoch": "\(epoch)"])
        let code: UInt16? = info.initiator == .transport ? nil : info.code
        handle(.closed(code: code, reason: info.reason, now: .now))
    }

    // MARK: - Token rotation

    /// Arms the rotation timer for the connection `epoch` that just opened, when its credential has a
    /// renew-at instant and `reconnect_before_expiry` is on. At least one second after the open, so a token
    /// already within its skew cannot cause a tight loop of rotations.
    private func scheduleRenewal(at renewAt: WallClockTime?, epoch: UInt64) {
        renewalTimer?.cancel()
        renewalTimer = nil
        guard settings.reconnectBeforeExpiry, let renewAt else { return }
        let micros = renewAt.microsecondsSinceEpoch - WallClockTime.now().microsecondsSinceEpoch
        let delay = max(Duration.seconds(1), Duration.microseconds(micros))
        logger.debug("token rotation scheduled", metadata: ["epoch": "\(epoch)", "in": "\(delay)"])
        renewalTimer = schedule(.now + delay) { driver in
            guard driver.connectionEpoch == epoch, driver.connection != nil else { return }
            driver.handle(.renewalDue(now: .now))
        }
    }

    // MARK: - Keepalive

    private func apply(_ output: KeepaliveStateMachine.Output) {
        for action in output.actions {
            switch action {
            case .sendPing(let payload):
                connection?.sendPing(payload)
            case .sendAppPing(let text):
                connection?.send(.text(text))
            case .recordRTT(let rtt):
                published.withLockedValue { $0.lastPongRTT = rtt }
                metrics.recordPingRTT(rtt)
            case .declareDead(let reason):
                logger.warning("peer considered dead: \(reason)")
                connection?.abort(code: CloseCode.goingAway, reason: "\(reason)")
                handle(.keepaliveDead(reason: reason, now: .now))
            }
        }
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
        if let next = output.nextDeadline {
            let epoch = connectionEpoch
            keepaliveTimer = schedule(next) { driver in
                guard driver.connectionEpoch == epoch, let connection = driver.connection else { return }
                // Frames are counted by the connection; the machine learns of them only when it wakes.
                let lastFrame = ContinuousClock.now - Duration.nanoseconds((NIODeadline.now() - connection.lastFrameAt).nanoseconds)
                _ = driver.keepalive.handle(.frameReceived(now: lastFrame))
                driver.apply(driver.keepalive.handle(.timerFired(now: .now)))
            }
        }
    }

    // MARK: - Helpers

    private func schedule(_ at: ContinuousClock.Instant, _ body: @escaping (UpstreamDriver) -> Void) -> Scheduled<Void> {
        let delay = max(.zero, at - ContinuousClock.now)
        return loop.assumeIsolated().scheduleTask(in: .nanoseconds(delay.nanosecondsClamped)) { [self] in body(self) }
    }

    private func publish(phaseChangedFrom before: UpstreamState.Phase) {
        let snapshot = supervisor.status
        let previous = published.withLockedValue { $0 }  // metrics count what changed
        let changed = published.withLockedValue { state -> Bool in
            let traffic = (state.messages, state.bytes, state.lastMessageAt, state.lastPongRTT)
            let compression = (state.compression, state.compressionStats)
            state = snapshot
            (state.messages, state.bytes, state.lastMessageAt, state.lastPongRTT) = traffic
            (state.compression, state.compressionStats) = compression
            return before != snapshot.phase
        }
        metrics.observe(from: previous, to: snapshot)
        if changed { onStatusChange() }
    }
}

/// The delegate of one connection attempt; tags every callback with the attempt's epoch so the driver can
/// ignore a superseded connection.
private final class ConnectionEvents: UpstreamConnectionDelegate {
    let driver: UpstreamDriver
    let epoch: UInt64
    let authMessage: String?
    let authOKPattern: String?
    let authTimeout: Duration?
    let renewAt: WallClockTime?

    init(driver: UpstreamDriver, epoch: UInt64, authMessage: String?, authOKPattern: String?, authTimeout: Duration?,
         renewAt: WallClockTime?) {
        self.renewAt = renewAt
        self.driver = driver
        self.epoch = epoch
        self.authMessage = authMessage
        self.authOKPattern = authOKPattern
        self.authTimeout = authTimeout
    }

    func connectionDidOpen(_ connection: UpstreamConnection, subprotocol: String?) {
        driver.opened(connection, epoch: epoch, events: self)
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

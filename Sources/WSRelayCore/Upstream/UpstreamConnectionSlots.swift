import Logging

/// Which of an upstream's connections is which — the current one, the successor opening beside it during a
/// token rotation, the retiring one closing after it — and the auth-message gate of the current one.
///
/// It wraps the upstream's `UpstreamSupervisor` (the reconnect policy) so that the NIO shell
/// (`UpstreamDriver`) has one machine to talk to and makes no decisions of its own:
/// - Events from a connection carry the epoch of the attempt that made it. This machine decides whether
///   that epoch still counts (the current attempt, the successor, the retiring connection) and turns what
///   counts into the supervisor's untagged events; a superseded epoch's callbacks are ignored.
/// - The supervisor's actions that mean "the connection" (`sendClose`, `abortConnection`, `transmit`,
///   `retire`, ...) come out addressed to an epoch, resolved at the moment the supervisor emitted them, so
///   a close followed by a new connect in one step closes the old connection, not the new one.
/// - `placement = "message"`: after the upgrade the auth message goes first; with an `auth_ok` pattern the
///   subscriptions wait for a reply that `AuthMessage.matches`, or the connection is closed with 1008 when
///   `auth_timeout` passes first.
/// - `reconnect_before_expiry`: when the current connection opens with a credential that has a renew-at
///   instant, the shell is asked to wake the rotation then (at least a second later, so a token already
///   inside its skew cannot cause a tight loop of rotations).
///
/// Same contract as the supervisor: call `handle(_:)` on one serial executor, perform the actions in order.
struct UpstreamConnectionSlots: Sendable {
    enum Event: Sendable {
        /// Anything that is not about one connection: start, pause, resume, reconnect, shutdown, removal,
        /// the supervisor's timer, send requests, credential failures.
        case supervisor(UpstreamSupervisor.Event)
        /// The credential for the next attempt arrived (nil: this upstream has no `auth`).
        case credentialReady(AttemptCredential?, now: ContinuousClock.Instant)
        case opened(epoch: UInt64, now: ContinuousClock.Instant, wallNow: WallClockTime)
        /// `retryAfter`: the parsed `Retry-After` of a rejected upgrade.
        case failedToOpen(epoch: UInt64, ConnectionFailure, retryAfter: Duration?, now: ContinuousClock.Instant)
        case closed(epoch: UInt64, ConnectionCloseInfo, now: ContinuousClock.Instant)
        /// A text message on a connection whose auth gate is waiting (`awaitsAuthReply(on:)`).
        case textReceived(epoch: UInt64, String)
        case authTimedOut(epoch: UInt64)
        /// The rotation wake-up armed by `armRenewal` fired.
        case renewalDue(epoch: UInt64, now: ContinuousClock.Instant)
        /// The keepalive machine of the current connection declared it dead.
        case keepaliveDead(epoch: UInt64, KeepaliveStateMachine.DeathReason, now: ContinuousClock.Instant)
    }

    enum Action: Sendable {
        /// Fetch a credential; `rejected`: the generation the last attempt used, when the server refused it.
        case fetchCredentials(rejected: UInt64?)
        /// Open a connection for this epoch with this credential (applied to the handshake request).
        case connect(epoch: UInt64, credential: AttemptCredential?, successor: Bool)
        /// Silence the connection (its callbacks are no longer wanted) and tear it down.
        case abandon(epoch: UInt64, reason: String)
        /// Silence the connection without touching it (the upstream is finished).
        case forget(epoch: UInt64)
        /// Start the closing handshake; its callbacks still count.
        case close(epoch: UInt64, code: UInt16, reason: String)
        /// Drop the connection without waiting for the closing handshake; its callbacks still count.
        case abort(epoch: UInt64, code: UInt16, reason: String)
        /// The connection opened and is now the current one: announce it and start its keepalive.
        case opened(epoch: UInt64)
        /// The connection ended: announce it (every closed connection is announced, retiring ones too).
        case announceClosed(epoch: UInt64, ConnectionCloseInfo)
        /// The current connection is over (closed, replaced or superseded): cancel its keepalive, auth and
        /// rotation timers and forget its per-connection status.
        case endCurrent
        /// Send a message a local program asked for (`UpstreamSupervisor.Action.transmit`).
        case transmit(epoch: UInt64, OutgoingMessage)
        /// Send the first message of `placement = "message"` (it contains the token: never log it).
        case sendAuthMessage(epoch: UInt64, String)
        /// Send the configured `subscribe` messages and the persisted sends.
        case sendSubscriptions(epoch: UInt64)
        case armAuthTimeout(epoch: UInt64, after: Duration)
        case cancelAuthTimeout
        case armRenewal(epoch: UInt64, after: Duration)
        /// The supervisor's one timer (see `UpstreamSupervisor`).
        case scheduleTimer(at: ContinuousClock.Instant)
        case cancelTimer
        case log(Logger.Level, String)
        case answerSend(id: UInt64, Result<UpstreamSendOutcome, UpstreamSendRefusal>)
        case finished
    }

    /// One connection attempt and the credential it was made with.
    private struct Slot: Sendable {
        var epoch: UInt64
        var credential: AttemptCredential?
    }

    private(set) var supervisor: UpstreamSupervisor
    /// The attempt (or open connection) the supervisor's connection actions address.
    private var current: Slot?
    /// Token rotation: the attempt opening beside `current`.
    private var successor: Slot?
    /// Token rotation: the previous connections, each closing after its successor opened; still delivered.
    private var retiring: Set<UInt64> = []
    /// The supervisor has finished; `.finished` waits for the last retiring connection to close.
    private var finishing = false
    /// `auth_ok`: the current connection's subscriptions wait for a reply containing `pattern`.
    private var authGate: (epoch: UInt64, pattern: String)?
    /// The credential fetched for the next attempt.
    private var pendingCredential: AttemptCredential?
    /// The generation of the credential the last attempt used (named when the server rejects it).
    private var lastGeneration: UInt64?

    init(supervisor: UpstreamSupervisor) {
        self.supervisor = supervisor
    }

    // MARK: - Queries

    var currentEpoch: UInt64? { current?.epoch }

    /// Messages of the current and of the retiring connections are delivered.
    func delivers(_ epoch: UInt64) -> Bool { epoch == current?.epoch || retiring.contains(epoch) }

    func awaitsAuthReply(on epoch: UInt64) -> Bool { authGate?.epoch == epoch }

    /// See `UpstreamSupervisor.startEpochs(after:)`.
    mutating func startEpochs(after base: UInt64) { supervisor.startEpochs(after: base) }

    /// See `UpstreamSupervisor.continueCounting(from:)`.
    mutating func continueCounting(from previous: UpstreamState) { supervisor.continueCounting(from: previous) }

    // MARK: - Events

    mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .supervisor(let event):
            return supervise(event)

        case .credentialReady(let credential, let now):
            pendingCredential = credential
            return supervise(.credentialsReady(now: now))

        case .opened(let epoch, let now, let wallNow):
            var actions: [Action] = []
            if let next = successor, next.epoch == epoch {
                // Token rotation: the successor becomes the current connection; the old one retires (the
                // supervisor's `retire` closes it) and is still delivered until it is gone.
                // An earlier retiring connection still finishing its handshake stays too: aborting it would
                // drop what the server sent before our close (seen with rotations a second apart on a loaded
                // machine). Each is gone within the close timeout, so there are never many.
                if let old = current?.epoch { retiring.insert(old) }
                current = next
                successor = nil
                authGate = nil
                actions.append(.endCurrent)
            }
            guard let slot = current, slot.epoch == epoch else { return actions }
            if supervisor.settings.reconnectBeforeExpiry, let renewAt = slot.credential?.renewAt {
                let due = Duration.microseconds(renewAt.microsecondsSinceEpoch - wallNow.microsecondsSinceEpoch)
                actions.append(.armRenewal(epoch: epoch, after: max(.seconds(1), due)))
            }
            actions.append(.opened(epoch: epoch))
            actions += supervise(.connected(now: now))
            guard let message = slot.credential?.authMessage else {
                return actions + [.sendSubscriptions(epoch: epoch)]
            }
            actions.append(.sendAuthMessage(epoch: epoch, message))
            guard let pattern = slot.credential?.authOKPattern else {
                return actions + [.sendSubscriptions(epoch: epoch)]
            }
            authGate = (epoch, pattern)
            return actions + [.armAuthTimeout(epoch: epoch, after: authTimeout(slot))]

        case .failedToOpen(let epoch, let failure, let retryAfter, let now):
            if successor?.epoch == epoch {
                successor = nil  // the current connection stays; the supervisor retries the rotation later
            } else {
                guard current?.epoch == epoch else { return [] }
                current = nil
            }
            switch failure {
            case .upgradeRejected(let status, _, _):
                return supervise(.upgradeFailed(status: status, retryAfter: retryAfter, now: now))
            case .connect(let text), .handshake(let text):
                return supervise(.connectFailed(error: text, now: now))
            }

        case .closed(let epoch, let info, let now):
            var actions: [Action] = [.announceClosed(epoch: epoch, info)]
            if retiring.remove(epoch) != nil {
                actions.append(.log(.info, "retired connection closed: \(info) (epoch \(epoch))"))
                if finishing && retiring.isEmpty {
                    finishing = false
                    actions.append(.finished)
                }
                return actions
            }
            guard current?.epoch == epoch else { return actions }
            current = nil
            authGate = nil
            actions.append(.endCurrent)
            if let next = successor {
                // The old connection ended during a rotation: the successor carries on as the current attempt.
                current = next
                successor = nil
            }
            actions.append(.log(info.initiator == .local ? .info : .warning, "disconnected: \(info) (epoch \(epoch))"))
            let code: UInt16? = info.initiator == .transport ? nil : info.code
            return actions + supervise(.closed(code: code, reason: info.reason, now: now))

        case .textReceived(let epoch, let text):
            guard let gate = authGate, gate.epoch == epoch, AuthMessage.matches(reply: text, okPattern: gate.pattern) else {
                return []
            }
            authGate = nil
            return [.cancelAuthTimeout, .sendSubscriptions(epoch: epoch)]

        case .authTimedOut(let epoch):
            guard authGate?.epoch == epoch, let slot = current, slot.epoch == epoch else { return [] }
            return [
                .log(.warning, "no auth reply matching auth_ok within \(authTimeout(slot))"),
                .close(epoch: epoch, code: CloseCode.policyViolation, reason: "auth timeout"),
            ]

        case .renewalDue(let epoch, let now):
            guard current?.epoch == epoch else { return [] }
            return supervise(.renewalDue(now: now))

        case .keepaliveDead(let epoch, let reason, let now):
            guard current?.epoch == epoch else { return [] }
            return [
                .log(.warning, "peer considered dead: \(reason)"),
                .abort(epoch: epoch, code: CloseCode.goingAway, reason: "\(reason)"),
            ] + supervise(.keepaliveDead(reason: reason, now: now))
        }
    }

    private func authTimeout(_ slot: Slot) -> Duration { slot.credential?.authTimeout ?? .seconds(10) }

    // MARK: - The supervisor's actions, addressed

    /// Feeds the supervisor and addresses each of its actions to the connection it meant at that point.
    private mutating func supervise(_ event: UpstreamSupervisor.Event) -> [Action] {
        var actions: [Action] = []
        for action in supervisor.handle(event) {
            actions += address(action)
        }
        return actions
    }

    private mutating func address(_ action: UpstreamSupervisor.Action) -> [Action] {
        switch action {
        case .fetchCredentials(let forceRefresh):
            return [.fetchCredentials(rejected: forceRefresh ? lastGeneration : nil)]
        case .connect(let epoch):
            var actions: [Action] = []
            for old in [current, successor].compactMap({ $0 }) {
                actions.append(.abandon(epoch: old.epoch, reason: "superseded"))
            }
            successor = nil
            authGate = nil
            current = takeCredential(for: epoch)
            return actions + [.endCurrent, .connect(epoch: epoch, credential: current?.credential, successor: false)]
        case .connectSuccessor(let epoch):
            let superseded: [Action] = successor.map { [.abandon(epoch: $0.epoch, reason: "superseded")] } ?? []
            successor = takeCredential(for: epoch)
            return superseded + [.connect(epoch: epoch, credential: successor?.credential, successor: true)]
        case .abortSuccessor:
            defer { successor = nil }
            return successor.map { [.abandon(epoch: $0.epoch, reason: "connection abandoned")] } ?? []
        case .retire(let epoch, let code, let reason):
            return retiring.contains(epoch) ? [.close(epoch: epoch, code: code, reason: reason)] : []
        case .sendClose(let code, let reason):
            return current.map { [.close(epoch: $0.epoch, code: code, reason: reason)] } ?? []
        case .abortConnection:
            return current.map { [.abort(epoch: $0.epoch, code: CloseCode.goingAway, reason: "connection abandoned")] } ?? []
        case .transmit(let message):
            return current.map { [.transmit(epoch: $0.epoch, message)] } ?? []
        case .scheduleTimer(let at):
            return [.scheduleTimer(at: at)]
        case .cancelTimer:
            return [.cancelTimer]
        case .log(let level, let message):
            return [.log(level, message)]
        case .answerSend(let id, let result):
            return [.answerSend(id: id, result)]
        case .finished:
            var actions: [Action] = [.endCurrent]
            if let epoch = current?.epoch { actions.append(.forget(epoch: epoch)) }
            if let epoch = successor?.epoch { actions.append(.abandon(epoch: epoch, reason: "connection abandoned")) }
            current = nil
            successor = nil
            authGate = nil
            pendingCredential = nil
            // A retiring connection is still in its closing handshake, and what the server sent before it saw
            // our close is still arriving: the upstream is finished when the last one has closed (each within
            // its close timeout), not before (forgetting it lost those messages on SIGTERM right after a
            // rotation, seen in a loaded CI run).
            guard retiring.isEmpty else {
                finishing = true
                return actions
            }
            return actions + [.finished]
        }
    }

    /// The slot for a new attempt, with the credential fetched for it (used once).
    private mutating func takeCredential(for epoch: UInt64) -> Slot {
        let credential = pendingCredential
        pendingCredential = nil
        if let credential { lastGeneration = credential.generation }
        return Slot(epoch: epoch, credential: credential)
    }
}

import Logging

/// Decides, over the whole life of one upstream, when to fetch credentials, connect, back off, give up,
/// and close.
///
/// It exists so that every reconnect policy — backoff, token refresh, fatal codes, Retry-After, pause,
/// shutdown — lives in one deterministic value that tests drive with plain instants, while the NIO shell
/// (`UpstreamDriver`, which owns the `UpstreamConnection`s) only translates: socket and credential outcomes
/// become `Event`s, `Action`s become I/O. Same shape as swift-nio's / hummingbird's WebSocket state machines: no sockets, no timers, no
/// tasks in here; time arrives as a value in each event and randomness comes from the generator given at
/// init.
///
/// ## Contract with the shell
/// - Call `handle(_:)` for each event, on one serial executor, and perform the returned actions in order.
/// - Timers: there is only ever one. `scheduleTimer(at:)` replaces any armed timer; `cancelTimer` disarms
///   it. When it fires, deliver `.timerFired(now:)`. A stale or early fire is harmless.
/// - Epochs: every `connect(epoch:)` carries a new, strictly greater epoch — the epoch counts connect
///   *attempts*, not successful opens, so it is known before the upgrade and the shell can tag the channel
///   with it. An open connection keeps the epoch of the attempt that made it (so opens show gaps where
///   attempts failed), and messages are stamped with it. The shell must drop callbacks from a channel
///   whose epoch is not the latest one it was asked to connect; events carry no epoch.
/// - `abortConnection`: tear down the in-flight attempt or the open channel without a close handshake.
/// - `sendClose(code:reason:)`: start the closing handshake on the open connection. Codes:
///   1001 "going away" on shutdown (our process is leaving), 1000 on `removed`, `pause` and
///   `reconnectRequested` (a deliberate, normal end; 1001 is kept for the daemon really going away).
///   After a pause or reconnect the supervisor no longer waits for that connection; its later events must
///   not be delivered. After shutdown/removal it waits for `closed` (or the close timeout) before `finished`.
/// - `finished`: the upstream is done for good; release everything (timers, channels). No more events.
///
/// ## Policy
/// - With an `auth` section, every attempt starts with `fetchCredentials`; `forceRefresh` is true when
///   the previous attempt was rejected because of its token. Without one, attempts connect directly.
/// - Auth rejections (a status in `refreshOnStatus`, a close code in `refreshOnCloseCodes`) refresh the
///   token and reconnect at once — but only once per run: if the attempt that used the freshly refreshed
///   token is rejected again, it falls back to normal backoff (still with forced refreshes), so a server
///   that rejects every token cannot cause a tight loop. Any other outcome ends the run.
/// - A close code in `fatalCloseCodes` stops the upstream (`stopped`) until an operator `reconnect`.
/// - A `Retry-After` on a failed upgrade (typically 429/503, but honoured on any status that backs off)
///   waits `max(Retry-After, backoff delay)`; without one it is plain backoff.
/// - Everything else (other statuses, connect/TLS/timeout errors, 1006 drops, keepalive deaths, other
///   close codes, credential failures) backs off with `ReconnectBackoff`.
/// - Make-before-break rotation (`reconnect_before_expiry`): `renewalDue` on an open connection fetches a
///   fresh token and opens a successor (`connectSuccessor`) while the old connection stays open (state stays
///   `open` on the old epoch; `renewal` tracks the progress). When the successor opens, the old one is
///   `retire`d with 1000 "token rotation" and the state becomes `open` on the new epoch. If the successor
///   fails, the old connection is kept and the renewal is retried after a backoff delay (the one timer). If
///   the old connection ends first, the successor continues as an ordinary attempt. Any other way out of
///   `open` (pause, reconnect, shutdown, removal, keepalive death) abandons the successor (`abortSuccessor`).
/// - The backoff counter resets only when a connection that stayed open for at least
///   `reconnect.resetAfter` ends, so servers that accept and then drop cannot cause a tight loop.
///   Operator actions (`resume`, `reconnectRequested`) also reset it.
public struct UpstreamSupervisor: Sendable {
    public enum State: Sendable, Equatable {
        /// Not started yet.
        case idle
        /// A token is being fetched or refreshed before connecting. `attempt` is 1-based since the last
        /// stable connection.
        case waitingForCredentials(attempt: Int)
        case connecting(attempt: Int)
        case open(epoch: UInt64, since: ContinuousClock.Instant)
        /// Waiting for the timer; `cause` is the disconnect cause that led here (see `UpstreamState.disconnects`).
        case backingOff(until: ContinuousClock.Instant, cause: String)
        case paused
        /// Gave up after a fatal close code; only an operator `reconnect` (or shutdown) leaves this state.
        case stopped(reason: String)
        /// Waiting for the close handshake of a shutdown or removal.
        case shuttingDown
        case finished
    }

    /// Progress of a make-before-break token rotation while the state is `open`.
    public enum Renewal: Sendable, Equatable {
        /// A fresh token is being fetched for the successor.
        case fetchingCredentials
        /// The successor connection (this epoch) is being opened.
        case connecting(epoch: UInt64)
        /// The last renewal failed; the next one starts when the timer fires at this instant.
        case retrying(at: ContinuousClock.Instant)
    }

    public enum Event: Sendable, Equatable {
        case start(now: ContinuousClock.Instant)
        /// The token of the open connection is about to expire (its renew-at instant was reached).
        case renewalDue(now: ContinuousClock.Instant)
        case credentialsReady(now: ContinuousClock.Instant)
        case credentialsFailed(reason: String, now: ContinuousClock.Instant)
        /// The WebSocket upgrade succeeded.
        case connected(now: ContinuousClock.Instant)
        /// The server answered the upgrade with a non-101 status; `retryAfter` from `RetryAfter.parse`.
        case upgradeFailed(status: Int, retryAfter: Duration?, now: ContinuousClock.Instant)
        /// TCP, TLS, proxy or timeout failure before the upgrade completed.
        case connectFailed(error: String, now: ContinuousClock.Instant)
        /// The open connection ended; `code` nil means the TCP connection dropped without a close frame (1006).
        case closed(code: UInt16?, reason: String, now: ContinuousClock.Instant)
        /// The keepalive machine declared the open connection dead.
        case keepaliveDead(reason: KeepaliveStateMachine.DeathReason, now: ContinuousClock.Instant)
        case timerFired(now: ContinuousClock.Instant)
        case pause(now: ContinuousClock.Instant)
        case resume(now: ContinuousClock.Instant)
        case reconnectRequested(now: ContinuousClock.Instant)
        case shutdown(now: ContinuousClock.Instant)
        /// A reload removed this upstream from the configuration.
        case removed(now: ContinuousClock.Instant)
        /// A local program asks to send `message` on the connection (`UpstreamSend`, already checked against
        /// the asker's permissions and the size limit). `persisted`: it is already in the persisted subscribe
        /// list, so when there is no open connection it still goes out at the next connect.
        case send(id: UInt64, message: OutgoingMessage, persisted: Bool, now: ContinuousClock.Instant)
    }

    public enum Action: Sendable, Equatable {
        case fetchCredentials(forceRefresh: Bool)
        case connect(epoch: UInt64)
        /// Open a second connection with this epoch while the current one stays open (token rotation).
        case connectSuccessor(epoch: UInt64)
        /// Tear down the in-flight successor attempt (the current connection is unaffected).
        case abortSuccessor
        /// The successor is open: close the previous connection (`epoch`) with a closing handshake. Its
        /// messages until then are still delivered; its later events are not supervisor events.
        case retire(epoch: UInt64, code: UInt16, reason: String)
        case sendClose(code: UInt16, reason: String)
        /// Tear down the in-flight attempt or the open channel without a closing handshake.
        case abortConnection
        case scheduleTimer(at: ContinuousClock.Instant)
        case cancelTimer
        case log(Logger.Level, String)
        case finished
        /// Write this message on the open connection (after everything already written to it).
        case transmit(OutgoingMessage)
        /// Answer the send request `id`.
        case answerSend(id: UInt64, Result<UpstreamSendOutcome, UpstreamSendRefusal>)
    }

    /// Close code and reason sent when the daemon shuts down.
    public static let shutdownClose: (code: UInt16, reason: String) = (1001, "going away")
    /// Close code and reason sent when a reload removed the upstream.
    public static let removedClose: (code: UInt16, reason: String) = (1000, "upstream removed")
    /// Close code and reason sent on `pause`.
    public static let pauseClose: (code: UInt16, reason: String) = (1000, "paused")
    /// Close code and reason sent on an operator `reconnect`.
    public static let reconnectClose: (code: UInt16, reason: String) = (1000, "reconnect requested")
    /// Close code and reason sent to the old connection once its successor is open.
    public static let rotationClose: (code: UInt16, reason: String) = (1000, "token rotation")

    public let settings: UpstreamSettings
    /// How long shutdown/removal waits for the server to answer our close frame.
    public let closeTimeout: Duration

    public private(set) var state: State = .idle
    public private(set) var backoff: ReconnectBackoff
    /// A token rotation in progress; only ever non-nil while `state` is `open`.
    public private(set) var renewal: Renewal?
    /// The successor attempt of the last renewal was rejected because of its token.
    private var renewalForceRefresh = false

    private var random: any RandomNumberGenerator & Sendable

    private var epoch: UInt64 = 0
    /// 1-based number of the current try since the last stable connection; 0 before the first.
    private var attempt: Int = 0
    private var openedAt: ContinuousClock.Instant?
    /// Consecutive attempts rejected because of their token.
    private var authRejections: Int = 0
    /// When shutdown/removal stops waiting for the server's close reply.
    private var shutdownDeadline: ContinuousClock.Instant?

    // Status counters.
    private var lastStateChange: ContinuousClock.Instant
    private var connects = 0
    private var disconnects: [String: Int] = [:]
    private var lastCloseCode: UInt16?
    private var lastCloseReason: String?
    private var lastError: String?
    private var nextRetry: ContinuousClock.Instant?

    /// - Parameters:
    ///   - settings: the upstream's validated settings; `auth != nil` makes every attempt fetch credentials.
    ///   - closeTimeout: how long shutdown/removal waits for the closing handshake.
    ///   - random: the jitter source; pass a seeded generator in tests.
    ///   - now: the creation instant, reported as `since` until the first event.
    public init(
        settings: UpstreamSettings,
        closeTimeout: Duration = .seconds(5),
        random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
        now: ContinuousClock.Instant = .now
    ) {
        self.settings = settings
        self.closeTimeout = closeTimeout
        self.backoff = ReconnectBackoff(settings.reconnect)
        self.random = random
        self.lastStateChange = now
    }

    private var usesCredentials: Bool { settings.auth != nil }

    /// Numbers this run's connections after `base` (`EpochReservation`: epochs grow across restarts too).
    /// Call before the first event.
    public mutating func startEpochs(after base: UInt64) {
        epoch = max(epoch, base)
    }

    /// A reload replaced this upstream's settings: carry on from the previous supervisor's epoch and counters,
    /// so epochs keep growing and status totals do not reset for what is, to an operator, the same upstream.
    public mutating func continueCounting(from previous: UpstreamState) {
        epoch = previous.epoch
        connects = previous.connects
        disconnects = previous.disconnects
    }

    /// The supervision part of the status snapshot; the shell adds the traffic fields.
    public var status: UpstreamState {
        UpstreamState(
            name: settings.name,
            phase: phase,
            since: lastStateChange,
            epoch: epoch,
            attempt: attempt,
            nextAttempt: nextRetry,
            lastCloseCode: lastCloseCode,
            lastCloseReason: lastCloseReason,
            lastError: lastError,
            connects: connects,
            disconnects: disconnects
        )
    }

    private var phase: UpstreamState.Phase {
        switch state {
        case .idle: return .idle
        case .waitingForCredentials: return .refreshingCredentials
        case .connecting: return .connecting
        case .open: return .open
        case .backingOff: return .backingOff
        case .paused: return .paused
        case .stopped: return .stopped
        case .shuttingDown: return .closing
        case .finished: return .finished
        }
    }

    // MARK: - Events

    /// Feeds one event and returns what the shell must do, in order. Events that do not apply to the
    /// current state (stale callbacks, duplicate requests) return no actions, or only a log line.
    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .start(let now):
            switch state {
            case .idle: return [.log(.info, "starting")] + beginAttempt(now: now)
            default: return []  // already started, or paused before start (resume starts it)
            }

        case .renewalDue(let now):
            guard case .open = state, settings.reconnectBeforeExpiry, usesCredentials, renewal == nil else { return [] }
            return beginRenewal(now: now)

        case .credentialsReady(let now):
            if case .open = state, renewal == .fetchingCredentials {
                epoch += 1
                renewal = .connecting(epoch: epoch)
                return [.connectSuccessor(epoch: epoch)]
            }
            guard case .waitingForCredentials = state else { return [] }
            return connectNow(now: now)

        case .credentialsFailed(let reason, let now):
            if case .open = state, renewal == .fetchingCredentials {
                return renewalFailed(now: now, message: "credentials unavailable for token rotation: \(reason)")
            }
            guard case .waitingForCredentials = state else { return [] }
            let cause = "credentials"
            count(cause)
            lastError = "credentials: \(reason)"
            // authRejections is kept: a forced refresh that failed is retried as a forced refresh.
            return backOff(cause: cause, now: now, message: "credentials unavailable: \(reason)")

        case .connected(let now):
            if case .open(let old, _) = state, case .connecting(let successor) = renewal {
                count("token rotation")
                connects += 1
                noteConnectionEnded(now: now)
                openedAt = now
                nextRetry = nil
                renewal = nil
                renewalForceRefresh = false
                transition(to: .open(epoch: successor, since: now), now: now)
                return [
                    .log(.info, "connected (epoch \(successor)); retiring epoch \(old) after token rotation"),
                    .retire(epoch: old, code: Self.rotationClose.code, reason: Self.rotationClose.reason),
                ]
            }
            guard case .connecting = state else { return [] }
            connects += 1
            openedAt = now
            nextRetry = nil
            transition(to: .open(epoch: epoch, since: now), now: now)
            return [.log(.info, "connected (epoch \(epoch))")]

        case .upgradeFailed(let status, let retryAfter, let now):
            if case .open = state, case .connecting = renewal {
                renewalForceRefresh = settings.refreshOnStatus.contains(status)
                return renewalFailed(now: now, atLeast: retryAfter, message: "token rotation: upgrade rejected with HTTP \(status)")
            }
            guard case .connecting = state else { return [] }
            let cause = "http \(status)"
            count(cause)
            lastError = "HTTP \(status)"
            if settings.refreshOnStatus.contains(status) {
                return authRejected(cause: cause, what: "upgrade rejected with HTTP \(status)", retryAfter: retryAfter, now: now)
            }
            authRejections = 0
            var message = "upgrade rejected with HTTP \(status)"
            if let retryAfter { message += " (Retry-After \(UpstreamState.describe(retryAfter)))" }
            return backOff(cause: cause, now: now, atLeast: retryAfter, message: message)

        case .connectFailed(let error, let now):
            if case .open = state, case .connecting = renewal {
                return renewalFailed(now: now, message: "token rotation: connect failed: \(error)")
            }
            guard case .connecting = state else { return [] }
            let cause = "connect error"
            count(cause)
            lastError = error
            authRejections = 0
            return backOff(cause: cause, now: now, message: "connect failed: \(error)")

        case .closed(let code, let reason, let now):
            switch state {
            case .open:
                switch renewal {
                case .fetchingCredentials?, .connecting?:
                    return closedDuringRenewal(renewal!, code: code, reason: reason, now: now)
                case .retrying?, nil:
                    break
                }
                return connectionClosed(code: code, reason: reason, now: now)
            case .shuttingDown:
                lastCloseCode = code ?? 1006
                lastCloseReason = reason
                return finish(now: now, cancelTimer: true)
            default:
                return []
            }

        case .keepaliveDead(let reason, let now):
            switch state {
            case .open:
                let abandoned = abandonRenewal()
                let cause: String
                switch reason {
                case .pongTimeout: cause = "pong timeout"
                case .idleTimeout: cause = "idle timeout"
                }
                count(cause)
                lastError = reason.description
                noteConnectionEnded(now: now)
                authRejections = 0
                return abandoned + [.abortConnection] + backOff(cause: cause, now: now, message: "connection dead: \(reason)")
            case .shuttingDown:
                return [.abortConnection] + finish(now: now, cancelTimer: true)
            default:
                return []
            }

        case .timerFired(let now):
            switch state {
            case .backingOff(let until, _):
                guard now >= until else { return [.scheduleTimer(at: until)] }
                return beginAttempt(now: now)
            case .open:
                guard case .retrying(let at) = renewal else { return [] }
                guard now >= at else { return [.scheduleTimer(at: at)] }
                renewal = nil
                return beginRenewal(now: now)
            case .shuttingDown:
                guard let deadline = shutdownDeadline, now >= deadline else { return [] }
                return [
                    .log(.warning, "no close reply within \(UpstreamState.describe(closeTimeout)); dropping the connection"),
                    .abortConnection,
                ] + finish(now: now, cancelTimer: false)
            default:
                return []
            }

        case .pause(let now):
            var actions: [Action] = []
            switch state {
            case .idle, .waitingForCredentials:
                break  // a credential answer arriving later is ignored
            case .connecting:
                actions.append(.abortConnection)
            case .open:
                count("pause")
                noteConnectionEnded(now: now)
                actions += abandonRenewal()
                actions.append(.sendClose(code: Self.pauseClose.code, reason: Self.pauseClose.reason))
            case .backingOff:
                actions.append(.cancelTimer)
            case .paused, .stopped, .shuttingDown, .finished:
                return []
            }
            nextRetry = nil
            transition(to: .paused, now: now)
            return actions + [.log(.info, "paused")]

        case .resume(let now):
            guard case .paused = state else { return [] }
            resetBackoff()
            return [.log(.info, "resumed")] + beginAttempt(now: now)

        case .reconnectRequested(let now):
            switch state {
            case .open:
                count("reconnect")
                noteConnectionEnded(now: now)
                resetBackoff()
                return abandonRenewal() + [
                    .sendClose(code: Self.reconnectClose.code, reason: Self.reconnectClose.reason),
                    .log(.info, "reconnecting on request"),
                ] + beginAttempt(now: now)
            case .backingOff:
                resetBackoff()
                return [.cancelTimer, .log(.info, "reconnecting on request")] + beginAttempt(now: now)
            case .stopped(let reason):
                resetBackoff()
                return [.log(.info, "restarting on request after fatal stop (\(reason))")] + beginAttempt(now: now)
            case .waitingForCredentials, .connecting:
                return [.log(.debug, "reconnect requested while already connecting; ignored")]
            case .paused:
                return [.log(.info, "reconnect requested while paused; resume to reconnect")]
            case .idle, .shuttingDown, .finished:
                return []
            }

        case .shutdown(let now):
            return close(for: "shutdown", sending: Self.shutdownClose, now: now)

        case .removed(let now):
            return close(for: "removed", sending: Self.removedClose, now: now)

        case .send(let id, let message, let persisted, _):
            // Only an open connection takes a message now. Nothing is queued for a connection that does not
            // exist yet: what a program sends is an answer to the session it sees (an application ping, a
            // subscription for that session); replayed on a later session it could be wrong. `persist` is the
            // way to say "on every connection".
            if case .open = state {
                return [.transmit(message), .answerSend(id: id, .success(.sent))]
            }
            if persisted { return [.answerSend(id: id, .success(.persistedForNextConnect))] }
            return [.answerSend(id: id, .failure(.notConnected(name: settings.name, phase: phase.rawValue)))]
        }
    }

    // MARK: - Transitions

    private mutating func transition(to newState: State, now: ContinuousClock.Instant) {
        if case .open = newState {} else {
            renewal = nil
            renewalForceRefresh = false
        }
        state = newState
        lastStateChange = now
    }

    private mutating func count(_ cause: String) {
        disconnects[cause, default: 0] += 1
    }

    private mutating func resetBackoff() {
        backoff.reset()
        attempt = 0
    }

    /// Starts a connect attempt: via the credential provider when there is one.
    private mutating func beginAttempt(now: ContinuousClock.Instant) -> [Action] {
        attempt += 1
        nextRetry = nil
        if usesCredentials {
            transition(to: .waitingForCredentials(attempt: attempt), now: now)
            return [.fetchCredentials(forceRefresh: authRejections > 0)]
        }
        return connectNow(now: now)
    }

    private mutating func connectNow(now: ContinuousClock.Instant) -> [Action] {
        epoch += 1
        transition(to: .connecting(attempt: attempt), now: now)
        return [.connect(epoch: epoch)]
    }

    // MARK: - Token rotation

    private mutating func beginRenewal(now: ContinuousClock.Instant) -> [Action] {
        renewal = .fetchingCredentials
        return [
            .log(.info, "token about to expire; opening a successor connection before closing this one"),
            .fetchCredentials(forceRefresh: renewalForceRefresh),
        ]
    }

    /// The successor (or its token) failed: keep the old connection, try again after a backoff delay.
    private mutating func renewalFailed(
        now: ContinuousClock.Instant,
        atLeast minimum: Duration? = nil,
        message: String
    ) -> [Action] {
        count("token rotation failed")
        lastError = message
        var delay = backoff.nextDelay(using: &random)
        if let minimum, minimum > delay { delay = minimum }
        let at = now + delay
        renewal = .retrying(at: at)
        return [
            .log(.warning, "\(message); keeping the current connection, retrying the rotation in \(UpstreamState.describe(delay))"),
            .scheduleTimer(at: at),
        ]
    }

    /// Leaving `open` another way: drop the successor attempt, if any.
    private mutating func abandonRenewal() -> [Action] {
        defer {
            renewal = nil
            renewalForceRefresh = false
        }
        if case .connecting = renewal { return [.abortSuccessor] }
        return []
    }

    /// The old connection ended while its successor was on the way: the successor carries on as an ordinary
    /// attempt (the shell makes it the current connection), unless the close code is fatal.
    private mutating func closedDuringRenewal(
        _ current: Renewal,
        code: UInt16?,
        reason: String,
        now: ContinuousClock.Instant
    ) -> [Action] {
        let effective = code ?? 1006
        count(String(effective))
        lastCloseCode = effective
        lastCloseReason = reason
        noteConnectionEnded(now: now)
        let described = code == nil ? "connection lost (1006)" : "closed by server: \(effective)"
        let what = reason.isEmpty ? described : "\(described) \(reason)"
        if let code, settings.fatalCloseCodes.contains(code) {
            let why = "fatal close code \(code)" + (reason.isEmpty ? "" : " (\(reason))")
            lastError = why
            nextRetry = nil
            let abort: [Action] = { if case .connecting = current { return [.abortConnection] } else { return [] } }()
            transition(to: .stopped(reason: why), now: now)
            return abort + [.log(.error, "\(what); \(code) is configured fatal, not reconnecting")]
        }
        attempt += 1
        nextRetry = nil
        switch current {
        case .connecting:
            transition(to: .connecting(attempt: attempt), now: now)
        default:
            transition(to: .waitingForCredentials(attempt: attempt), now: now)
        }
        return [.log(.warning, "\(what) during token rotation; continuing with the successor")]
    }

    /// Bookkeeping when an open connection ends: a connection that lived `resetAfter` proves the
    /// upstream healthy, so backoff and the auth-rejection run start over.
    private mutating func noteConnectionEnded(now: ContinuousClock.Instant) {
        defer { openedAt = nil }
        guard let openedAt, now - openedAt >= settings.reconnect.resetAfter else { return }
        resetBackoff()
        authRejections = 0
    }

    private mutating func connectionClosed(code: UInt16?, reason: String, now: ContinuousClock.Instant) -> [Action] {
        let effective = code ?? 1006
        let cause = String(effective)
        count(cause)
        lastCloseCode = effective
        lastCloseReason = reason
        noteConnectionEnded(now: now)
        let described = code == nil ? "connection lost (1006)" : "closed by server: \(effective)"
        let what = reason.isEmpty ? described : "\(described) \(reason)"

        if let code, settings.fatalCloseCodes.contains(code) {
            let why = "fatal close code \(code)" + (reason.isEmpty ? "" : " (\(reason))")
            lastError = why
            nextRetry = nil
            transition(to: .stopped(reason: why), now: now)
            return [.log(.error, "\(what); \(code) is configured fatal, not reconnecting")]
        }
        if let code, settings.refreshOnCloseCodes.contains(code) {
            return authRejected(cause: cause, what: what, now: now)
        }
        authRejections = 0
        return backOff(cause: cause, now: now, message: what)
    }

    /// An attempt was rejected because of its token.
    /// The immediate retry ignores `retryAfter`; the backoff paths honour it.
    private mutating func authRejected(
        cause: String,
        what: String,
        retryAfter: Duration? = nil,
        now: ContinuousClock.Instant
    ) -> [Action] {
        guard usesCredentials else {
            return backOff(cause: cause, now: now, atLeast: retryAfter, message: "\(what) (no credentials configured to refresh)")
        }
        authRejections += 1
        if authRejections == 1 {
            return [.log(.info, "\(what); refreshing credentials and reconnecting")] + beginAttempt(now: now)
        }
        return backOff(cause: cause, now: now, atLeast: retryAfter, message: "\(what) again with a refreshed token")
    }

    /// Waits `max(backoff delay, atLeast)` before the next attempt.
    private mutating func backOff(
        cause: String,
        now: ContinuousClock.Instant,
        atLeast minimum: Duration? = nil,
        message: String
    ) -> [Action] {
        var delay = backoff.nextDelay(using: &random)
        if let minimum, minimum > delay { delay = minimum }
        let until = now + delay
        nextRetry = until
        transition(to: .backingOff(until: until, cause: cause), now: now)
        return [
            .log(.warning, "\(message); reconnecting in \(UpstreamState.describe(delay))"),
            .scheduleTimer(at: until),
        ]
    }

    /// Shutdown or removal: close an open connection politely, end everything else at once.
    private mutating func close(
        for cause: String,
        sending close: (code: UInt16, reason: String),
        now: ContinuousClock.Instant
    ) -> [Action] {
        switch state {
        case .open:
            count(cause)
            noteConnectionEnded(now: now)
            let abandoned = abandonRenewal()
            let deadline = now + closeTimeout
            shutdownDeadline = deadline
            transition(to: .shuttingDown, now: now)
            return abandoned + [
                .log(.info, cause == "shutdown" ? "closing (shutdown)" : "closing (upstream removed)"),
                .sendClose(code: close.code, reason: close.reason),
                .scheduleTimer(at: deadline),
            ]
        case .backingOff:
            return [.cancelTimer] + finish(now: now, cancelTimer: false)
        case .connecting:
            return [.abortConnection] + finish(now: now, cancelTimer: false)
        case .idle, .waitingForCredentials, .paused, .stopped:
            return finish(now: now, cancelTimer: false)
        case .shuttingDown, .finished:
            return []
        }
    }

    private mutating func finish(now: ContinuousClock.Instant, cancelTimer: Bool) -> [Action] {
        nextRetry = nil
        shutdownDeadline = nil
        transition(to: .finished, now: now)
        return (cancelTimer ? [.cancelTimer] : []) + [.finished]
    }
}

/// The life of one client connection — connect, upgrade, open, the closing handshake (RFC 6455 §7) — as a
/// value: events in, actions out, no I/O.
///
/// `UpstreamConnection` is the shell: it turns channel callbacks, its one deadline timer and its callers'
/// commands into calls here, and performs the returned actions in order. What a frame *means* is decided by
/// `WebSocketMessageAssembler` (behind `InboundMessageDecoder`); this machine decides what the connection
/// *does* about it in its current phase: who closed, which close frame goes out, when TCP is closed, and
/// which single report (`reportOpened`, `reportFailedToOpen`, `reportClosed`) its owner gets. Shaped like
/// swift-websocket's `WSCore/WebSocketStateMachine`: one mutating method per event.
///
/// Deadlines: there is only ever one, and the phase says which it is (connect, handshake, or the closing
/// handshake), so `deadlinePassed()` needs no argument and a stale fire in another phase does nothing.
struct WebSocketConnectionStateMachine: Sendable {
    enum Phase: Sendable, Equatable {
        case idle, connecting, handshaking, open, closing, closed
    }

    enum Action: Sendable, Equatable {
        /// Arm the deadline (replacing an armed one); when it passes, call `deadlinePassed()`.
        case armDeadline(Duration)
        case cancelDeadline
        /// Write the HTTP upgrade request.
        case sendUpgradeRequest
        /// Write a close frame now; data frames still waiting for writability are dropped.
        case sendCloseFrame(code: UInt16, reason: String)
        /// Close TCP now (not waiting for the peer's part of the closing handshake).
        case closeChannel
        /// Leave TCP open, reading and discarding, until the server closes it (its part of the closing
        /// handshake), and close it ourselves once `within` has passed. Closing a socket with unread data in it
        /// makes the kernel answer with RST, which can cost the server the close frame just sent.
        case closeChannelWhenPeerDoes(within: Duration)
        /// The upgrade succeeded: the connection is open.
        case reportOpened
        /// The connection never opened (the only report for this attempt).
        case reportFailedToOpen(ConnectionFailure)
        /// The open connection ended (the only report for this attempt).
        case reportClosed(ConnectionCloseInfo)
    }

    struct Timeouts: Sendable {
        var connect: Duration
        var handshake: Duration
        /// How long to wait for the other side's part of a closing handshake before closing TCP ourselves.
        var close: Duration
    }

    /// Why the pipeline reported an error, classified by the shell (which knows NIO's error types).
    struct PipelineError: Sendable, Equatable {
        /// For a failure before the upgrade and for a dropped open connection.
        var description: String
        /// For a failure while waiting for the upgrade response (names a bad Sec-WebSocket-Accept and such).
        var handshakeDescription: String
        /// Set when the frame decoder rejected a frame: the connection fails with this close code.
        var frameViolation: (code: UInt16, reason: String)?

        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.description == rhs.description && lhs.handshakeDescription == rhs.handshakeDescription
                && lhs.frameViolation?.code == rhs.frameViolation?.code && lhs.frameViolation?.reason == rhs.frameViolation?.reason
        }
    }

    let timeouts: Timeouts
    /// `host:port` of the server, for the connect-timeout message.
    let target: String

    private(set) var phase: Phase = .idle
    /// How the connection ends, once that is decided (our close, the peer's, a violation, a transport error).
    private(set) var closeInfo: ConnectionCloseInfo?

    init(timeouts: Timeouts, target: String) {
        self.timeouts = timeouts
        self.target = target
    }

    // MARK: - Queries (the hot path asks these per frame instead of exchanging actions)

    /// Data messages are delivered while open, and also while our own close frame is on its way: the server
    /// sent them before it saw it, and "received" means delivered (a graceful shutdown must not lose them).
    var deliversMessages: Bool {
        phase == .open || (phase == .closing && closeInfo?.initiator == .local)
    }

    /// Data frames and pongs go out only while open.
    var isOpen: Bool { phase == .open }

    // MARK: - Opening

    mutating func start() -> [Action] {
        guard phase == .idle else { return [] }
        phase = .connecting
        return [.armDeadline(timeouts.connect)]
    }

    /// TCP connected. False: the attempt was given up meanwhile; the shell closes the new channel.
    func acceptsChannel() -> Bool { phase == .connecting }

    /// TCP (plus TLS, plus the proxy tunnel) is ready for the upgrade request.
    mutating func transportReady() -> [Action] {
        guard phase == .connecting else { return [] }
        phase = .handshaking
        return [.armDeadline(timeouts.handshake), .sendUpgradeRequest]
    }

    /// The server answered 101. `unofferedSubprotocol`: the subprotocol it chose that the client did not
    /// offer; `negotiation`: the judged permessage-deflate answer.
    mutating func upgraded(unofferedSubprotocol: String?,
                           negotiation: Result<PerMessageDeflateParameters?, DeflateNegotiationError>) -> [Action] {
        guard phase == .handshaking else { return [] }
        if let chosen = unofferedSubprotocol {
            return failOpen(.handshake("server chose subprotocol \"\(chosen)\" that was not offered"))
        }
        if case .failure(let error) = negotiation {
            // RFC 6455 §4.1 / RFC 7692 §7: _Fail the WebSocket Connection_; the close frame (1010 for a declined
            // required extension, 1002 for an invalid answer) tells the server why. A server that starts
            // sending with its 101 has data in our socket by now: closing TCP at once lost the close frame to
            // the kernel's RST (the server saw 1006), so the server closes first, as in any closing handshake.
            phase = .closed
            return [.sendCloseFrame(code: error.closeCode, reason: error.message), .cancelDeadline,
                    .closeChannelWhenPeerDoes(within: timeouts.close), .reportFailedToOpen(.handshake(error.message))]
        }
        phase = .open
        return [.cancelDeadline, .reportOpened]
    }

    /// The attempt ends before the connection opened; later events are ignored.
    mutating func failOpen(_ failure: ConnectionFailure) -> [Action] {
        guard phase == .connecting || phase == .handshaking else { return [] }
        phase = .closed
        return [.cancelDeadline, .closeChannel, .reportFailedToOpen(failure)]
    }

    // MARK: - Closing

    /// Our side starts the closing handshake; TCP is closed when the server answers or the deadline passes.
    mutating func close(code: UInt16, reason: String) -> [Action] {
        switch phase {
        case .idle:
            phase = .closed
            let info = ConnectionCloseInfo(code: code, reason: reason, initiator: .local)
            closeInfo = info
            return [.reportClosed(info)]
        case .connecting, .handshaking:
            return failOpen(.connect("cancelled: \(reason)"))
        case .open:
            closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .local)
            phase = .closing
            return [.sendCloseFrame(code: code, reason: reason), .armDeadline(timeouts.close)]
        case .closing, .closed:
            return []
        }
    }

    /// Drops the connection at once (dead peer): a close frame is attempted but not waited for.
    mutating func abort(code: UInt16, reason: String) -> [Action] {
        guard phase == .open || phase == .closing else { return close(code: code, reason: reason) }
        if closeInfo == nil { closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .local) }
        let wasOpen = phase == .open
        phase = .closing
        return (wasOpen ? [.sendCloseFrame(code: code, reason: reason)] : []) + [.closeChannel]
    }

    /// The server's close frame (`code` nil: it had no status).
    mutating func peerClosed(code: UInt16?, reason: String) -> [Action] {
        switch phase {
        case .open:
            // Answer with the same code (RFC 6455 §5.5.1), then wait for the server to close TCP.
            closeInfo = ConnectionCloseInfo(code: code ?? CloseCode.noStatus, reason: reason, initiator: .peer)
            phase = .closing
            return [.sendCloseFrame(code: code ?? CloseCode.normal, reason: ""), .armDeadline(timeouts.close)]
        case .closing:
            // The answer to our own close frame: the handshake is complete.
            return [.closeChannel]
        default:
            return []
        }
    }

    /// The server broke the protocol: fail the connection with `code`.
    mutating func protocolViolation(code: UInt16, reason: String) -> [Action] {
        switch phase {
        case .open:
            closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .protocolViolation)
            phase = .closing
            // After a protocol error the server's frames can no longer be trusted; do not wait for its close.
            return [.sendCloseFrame(code: code, reason: reason), .closeChannel]
        case .closing:
            return [.closeChannel]
        default:
            return []
        }
    }

    /// An error from the channel pipeline (TLS, HTTP, frame decoding, transport).
    mutating func pipelineError(_ error: PipelineError) -> [Action] {
        switch phase {
        case .connecting:
            return failOpen(.connect("TLS: \(error.description)"))
        case .handshaking:
            return failOpen(.handshake(error.handshakeDescription))
        case .open:
            if let violation = error.frameViolation {
                return protocolViolation(code: violation.code, reason: violation.reason)
            }
            if closeInfo == nil {
                closeInfo = ConnectionCloseInfo(code: CloseCode.abnormal, reason: error.description, initiator: .transport)
            }
            return [.closeChannel]
        case .closing, .closed, .idle:
            return [.closeChannel]
        }
    }

    /// The one deadline passed; what it meant depends on the phase.
    mutating func deadlinePassed() -> [Action] {
        switch phase {
        case .connecting:
            return failOpen(.connect("connect timeout (\(timeouts.connect)) to \(target)"))
        case .handshaking:
            return failOpen(.handshake("no upgrade response within \(timeouts.handshake)"))
        case .closing:
            return [.closeChannel]
        case .idle, .open, .closed:
            return []
        }
    }

    /// TCP is gone.
    mutating func channelClosed() -> [Action] {
        switch phase {
        case .connecting:
            return failOpen(.connect("connection closed during TLS handshake"))
        case .handshaking:
            return failOpen(.handshake("connection closed before the upgrade response"))
        case .open, .closing:
            phase = .closed
            let info = closeInfo ?? ConnectionCloseInfo(code: CloseCode.abnormal, reason: "connection dropped without a close frame",
                                                        initiator: .transport)
            return [.cancelDeadline, .reportClosed(info)]
        case .idle, .closed:
            return [.cancelDeadline]
        }
    }
}

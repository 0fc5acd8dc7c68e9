import Testing
@testable import WSRelayCore

/// The phases and the closing handshake of one connection (RFC 6455 §7), without a socket.
@Suite("WebSocketConnectionStateMachine")
struct WebSocketConnectionStateMachineTests {
    typealias M = WebSocketConnectionStateMachine

    private let timeouts = M.Timeouts(connect: .seconds(3), handshake: .seconds(4), close: .seconds(2))

    private func fresh() -> M { M(timeouts: timeouts, target: "feed.example.com:443") }

    /// Through connect and upgrade to `open`.
    private func opened() -> M {
        var m = fresh()
        _ = m.start()
        _ = m.transportReady()
        _ = m.upgraded(unofferedSubprotocol: nil, negotiation: .success(nil))
        return m
    }

    private func error(_ text: String, violation: (UInt16, String)? = nil) -> M.PipelineError {
        M.PipelineError(description: text, handshakeDescription: "handshake: \(text)", frameViolation: violation)
    }

    @Test func opensThroughConnectAndUpgradeWithOneDeadlinePerPhase() {
        var m = fresh()
        #expect(m.start() == [.armDeadline(.seconds(3))])
        #expect(m.start().isEmpty, "a second start does nothing")
        #expect(m.phase == .connecting && m.acceptsChannel())
        #expect(m.transportReady() == [.armDeadline(.seconds(4)), .sendUpgradeRequest])
        #expect(m.transportReady().isEmpty, "TLS completing after a plain connect does not resend the request")
        #expect(!m.isOpen && !m.deliversMessages)
        #expect(m.upgraded(unofferedSubprotocol: nil, negotiation: .success(nil)) == [.cancelDeadline, .reportOpened])
        #expect(m.isOpen && m.deliversMessages)
        #expect(m.deadlinePassed().isEmpty, "a stale deadline in the open phase does nothing")
    }

    @Test func ourCloseWaitsForTheAnswerAndStillDeliversWhatTheServerSentMeanwhile() {
        var m = opened()
        #expect(m.close(code: 1001, reason: "going away") == [.sendCloseFrame(code: 1001, reason: "going away"), .armDeadline(.seconds(2))])
        #expect(m.phase == .closing && !m.isOpen)
        #expect(m.deliversMessages, "messages the server sent before it saw our close are delivered")
        #expect(m.close(code: 1000, reason: "again").isEmpty)
        #expect(m.peerClosed(code: 1001, reason: "") == [.closeChannel], "the answer completes the handshake")
        #expect(m.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 1001, reason: "going away", initiator: .local))])
        #expect(m.channelClosed() == [.cancelDeadline], "reported once")
    }

    @Test func ourCloseWithoutAnAnswerClosesTCPAtTheDeadline() {
        var m = opened()
        _ = m.close(code: 1000, reason: "paused")
        #expect(m.deadlinePassed() == [.closeChannel])
        #expect(m.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 1000, reason: "paused", initiator: .local))])
    }

    @Test func thePeersCloseIsAnsweredWithItsCodeAndEndsDelivery() {
        var m = opened()
        #expect(m.peerClosed(code: 4001, reason: "bye") == [.sendCloseFrame(code: 4001, reason: ""), .armDeadline(.seconds(2))])
        #expect(!m.deliversMessages, "nothing after the server's close frame counts")
        #expect(m.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 4001, reason: "bye", initiator: .peer))])
    }

    @Test func aCloseFrameWithoutStatusIsAnsweredWith1000AndReportedAs1005() {
        var m = opened()
        #expect(m.peerClosed(code: nil, reason: "") == [.sendCloseFrame(code: 1000, reason: ""), .armDeadline(.seconds(2))])
        #expect(m.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 1005, reason: "", initiator: .peer))])
    }

    @Test func aProtocolViolationFailsAtOnceWithoutWaitingForTheServer() {
        var m = opened()
        #expect(m.protocolViolation(code: 1002, reason: "masked frame")
                == [.sendCloseFrame(code: 1002, reason: "masked frame"), .closeChannel])
        #expect(m.protocolViolation(code: 1007, reason: "bad utf-8") == [.closeChannel], "the first violation is the one reported")
        #expect(m.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 1002, reason: "masked frame", initiator: .protocolViolation))])
        var closed = fresh()
        #expect(closed.protocolViolation(code: 1002, reason: "x").isEmpty)
    }

    @Test func abortSendsACloseFrameButDoesNotWaitAndKeepsAnEarlierCause() {
        var m = opened()
        #expect(m.abort(code: 1001, reason: "pong timeout") == [.sendCloseFrame(code: 1001, reason: "pong timeout"), .closeChannel])
        #expect(m.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 1001, reason: "pong timeout", initiator: .local))])
        var closing = opened()
        _ = closing.peerClosed(code: 1000, reason: "done")
        #expect(closing.abort(code: 1001, reason: "superseded") == [.closeChannel], "no second close frame")
        #expect(closing.channelClosed() == [.cancelDeadline, .reportClosed(.init(code: 1000, reason: "done", initiator: .peer))])
    }

    @Test func closingBeforeTheUpgradeCancelsTheAttempt() {
        var connecting = fresh()
        _ = connecting.start()
        #expect(connecting.abort(code: 1001, reason: "superseded")
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.connect("cancelled: superseded"))])
        #expect(!connecting.acceptsChannel(), "a channel that connects later is closed at once")
        var idle = fresh()
        #expect(idle.close(code: 1000, reason: "removed") == [.reportClosed(.init(code: 1000, reason: "removed", initiator: .local))])
        #expect(idle.start().isEmpty)
    }

    @Test func eachOpeningPhaseHasItsOwnTimeoutAndFailureText() {
        var connecting = fresh()
        _ = connecting.start()
        #expect(connecting.deadlinePassed()
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.connect("connect timeout (3.0 seconds) to feed.example.com:443"))])
        var handshaking = fresh()
        _ = handshaking.start()
        _ = handshaking.transportReady()
        #expect(handshaking.deadlinePassed()
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.handshake("no upgrade response within 4.0 seconds"))])
        #expect(handshaking.failOpen(.connect("late")).isEmpty, "an attempt fails once")
        #expect(handshaking.channelClosed() == [.cancelDeadline])
    }

    @Test func tcpClosingBeforeTheUpgradeIsAFailureToOpen() {
        var tls = fresh()
        _ = tls.start()
        #expect(tls.channelClosed() == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.connect("connection closed during TLS handshake"))])
        var upgrade = fresh()
        _ = upgrade.start()
        _ = upgrade.transportReady()
        #expect(upgrade.channelClosed()
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.handshake("connection closed before the upgrade response"))])
    }

    @Test func aBadUpgradeAnswerFailsTheAttempt() {
        var subprotocol = fresh()
        _ = subprotocol.start()
        _ = subprotocol.transportReady()
        #expect(subprotocol.upgraded(unofferedSubprotocol: "v9", negotiation: .success(nil))
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.handshake("server chose subprotocol \"v9\" that was not offered"))])
        var deflate = fresh()
        _ = deflate.start()
        _ = deflate.transportReady()
        let declined = DeflateNegotiationError(closeCode: 1010, message: "declined")
        #expect(deflate.upgraded(unofferedSubprotocol: nil, negotiation: .failure(declined))
                == [.sendCloseFrame(code: 1010, reason: "declined"), .cancelDeadline,
                    .closeChannelWhenPeerDoes(within: timeouts.close), .reportFailedToOpen(.handshake("declined"))])
        #expect(!deflate.isOpen)
        // The server's reply and its close of TCP change nothing more: the attempt was reported once.
        #expect(deflate.peerClosed(code: 1010, reason: "") == [])
        #expect(deflate.channelClosed() == [.cancelDeadline])
    }

    @Test func pipelineErrorsMeanWhatThePhaseMakesThem() {
        var tls = fresh()
        _ = tls.start()
        #expect(tls.pipelineError(error("bad certificate"))
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.connect("TLS: bad certificate"))])
        var handshake = fresh()
        _ = handshake.start()
        _ = handshake.transportReady()
        #expect(handshake.pipelineError(error("accept"))
                == [.cancelDeadline, .closeChannel, .reportFailedToOpen(.handshake("handshake: accept"))])
        var frame = opened()
        #expect(frame.pipelineError(error("too long", violation: (1009, "frame too big")))
                == [.sendCloseFrame(code: 1009, reason: "frame too big"), .closeChannel])
        var transport = opened()
        #expect(transport.pipelineError(error("connection reset by peer")) == [.closeChannel])
        #expect(transport.channelClosed()
                == [.cancelDeadline, .reportClosed(.init(code: 1006, reason: "connection reset by peer", initiator: .transport))])
    }

    @Test func aDropWithoutCloseFrameIsReportedAs1006() {
        var m = opened()
        #expect(m.channelClosed()
                == [.cancelDeadline, .reportClosed(.init(code: 1006, reason: "connection dropped without a close frame", initiator: .transport))])
        #expect(m.close(code: 1000, reason: "late").isEmpty)
    }
}

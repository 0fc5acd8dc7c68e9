import Testing
import WSRelayTestSupport
@testable import WSRelayCore

/// The way back's pure parts: the supervisor's answer to a send in each state, and the request parsers of
/// the subscriber socket and the control socket.
@Suite("Upstream send: supervisor and parsers")
struct UpstreamSendUnitTests {
    typealias S = UpstreamSupervisor
    let t0 = ContinuousClock.now

    @Test func onlyAnOpenConnectionTransmitsAndAPersistedMessageWaitsForTheNextConnect() {
        var s = S(settings: UpstreamFixtures.settings(), random: SplitMix64(seed: 1), now: t0)
        let hello = OutgoingMessage.text("hello")
        #expect(s.handle(.send(id: 1, message: hello, persisted: false, now: t0))
                == [.answerSend(id: 1, .failure(.notConnected(name: "feed", phase: "not started")))])
        _ = s.handle(.start(now: t0))
        #expect(s.handle(.send(id: 2, message: hello, persisted: false, now: t0))
                == [.answerSend(id: 2, .failure(.notConnected(name: "feed", phase: "connecting")))])
        #expect(s.handle(.send(id: 3, message: hello, persisted: true, now: t0))
                == [.answerSend(id: 3, .success(.persistedForNextConnect))])
        _ = s.handle(.connected(now: t0))
        #expect(s.handle(.send(id: 4, message: hello, persisted: false, now: t0))
                == [.transmit(hello), .answerSend(id: 4, .success(.sent))])
        _ = s.handle(.pause(now: t0))
        #expect(s.handle(.send(id: 5, message: .binary([1, 2]), persisted: false, now: t0))
                == [.answerSend(id: 5, .failure(.notConnected(name: "feed", phase: "paused")))])
    }

    @Test func subscriberSendLines() {
        #expect(SubscribeRequest.parse(Array(#"{"send":{"upstream":"m","text":"hi"}}"#.utf8))
                == .success(.send(UpstreamSend(upstream: "m", message: .text("hi")))))
        #expect(SubscribeRequest.parse(Array(#"{"send":{"upstream":"m","binary":"AAEC","persist":true}}"#.utf8))
                == .success(.send(UpstreamSend(upstream: "m", message: .binary([0, 1, 2]), persist: true))))
        #expect(SubscribeRequest.parse(Array(#"{"send":{"text":"hi"}}"#.utf8))
                == .failure(.invalidSend("missing \"upstream\" (the upstream name)")))
        #expect(SubscribeRequest.parse(Array(#"{"send":{"upstream":"m","text":"a","binary":"AA=="}}"#.utf8))
                == .failure(.invalidSend("give either \"text\" or \"binary\", not both")))
        #expect(SubscribeRequest.parse(Array(#"{"send":{"upstream":"m","binary":"%%%"}}"#.utf8))
                == .failure(.invalidSend("\"binary\" is not valid base64")))
        #expect(SubscribeRequest.parse(Array(#"{"send":{"upstream":"m","text":"a","persist":"yes"}}"#.utf8))
                == .failure(.invalidSend("\"persist\" must be true or false")))
        #expect(SubscribeRequest.parse(Array(#"{"send":"m"}"#.utf8)) == .failure(.invalidSend("expected an object")))
        let request = UpstreamSend(upstream: "m\"", message: .text("héllo"), persist: true)
        #expect(String(decoding: SubscribeRequest.sendOKLine(request, outcome: .persistedForNextConnect), as: UTF8.self)
                == #"{"ok":"send","upstream":"m\"","bytes":6,"sent":false,"persisted":true}"# + "\n")
    }

    @Test func controlSendAndUnsendRoundTrip() throws {
        let requests: [ControlRequest] = [
            .send(UpstreamSend(upstream: "market", message: .text("{\"op\":\"sub\"}"), persist: true)),
            .send(UpstreamSend(upstream: "market", message: .binary([0xFF, 0]))),
            .unsend(upstream: "market", message: .text("x y")),
        ]
        for request in requests {
            #expect(ControlRequest.parse(Array(request.line.utf8)) == .success(request), "\(request.line)")
        }
        #expect(ControlRequest.parse(Array("send market hello world\r".utf8))
                == .success(.send(UpstreamSend(upstream: "market", message: .text("hello world")))))
        #expect(ControlRequest.parse(Array("unsend market  a b".utf8)) == .success(.unsend(upstream: "market", message: .text("a b"))))
        guard case .failure(let error) = ControlRequest.parse(Array("send market".utf8)) else {
            Issue.record("a send without text parsed")
            return
        }
        #expect(error.description == "send needs an upstream and a text: send NAME TEXT")
    }
}

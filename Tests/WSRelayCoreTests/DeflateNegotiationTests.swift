import Testing
@testable import WSRelayCore

/// permessage-deflate negotiation (RFC 7692 §5, §7.1) as the client judges the server's answer: every
/// parameter combination a server may send, and the answers the RFC says must fail the connection.
@Suite("DeflateNegotiation")
struct DeflateNegotiationTests {
    private let auto = DeflateNegotiation(mode: .auto)

    private func agreed(_ negotiation: DeflateNegotiation, _ values: [String]) -> PerMessageDeflateParameters?? {
        try? negotiation.judge(values).get()
    }

    private func failure(_ negotiation: DeflateNegotiation, _ values: [String]) -> DeflateNegotiationError? {
        if case .failure(let error) = negotiation.judge(values) { return error }
        return nil
    }

    // MARK: - The offer

    @Test func offersAreWrittenAsHeaderValues() {
        #expect(auto.requestHeaderValue == "permessage-deflate; client_max_window_bits")
        #expect(DeflateNegotiation(mode: .require).requestHeaderValue == "permessage-deflate; client_max_window_bits")
        #expect(DeflateNegotiation(mode: .off).requestHeaderValue == nil)
        let everything = PerMessageDeflateOffer(clientMaxWindowBits: .limit(12), serverMaxWindowBits: 10,
                                                clientNoContextTakeover: true, serverNoContextTakeover: true)
        #expect(everything.headerValue
                == "permessage-deflate; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=12; server_max_window_bits=10")
        #expect(PerMessageDeflateOffer(clientMaxWindowBits: .notOffered).headerValue == "permessage-deflate")
    }

    @Test func theUpgradeRequestCarriesTheOfferOnlyWhenCompressionIsNotOff() {
        let url = WebSocketURL(secure: false, host: "127.0.0.1", port: 80, target: "/")
        var settings = UpstreamSettings(name: "a", url: url)
        #expect(HandshakeRequest(settings: settings).head().headers["Sec-WebSocket-Extensions"] == ["permessage-deflate; client_max_window_bits"])
        settings.compression = .require
        #expect(HandshakeRequest(settings: settings).head().headers["Sec-WebSocket-Extensions"] == ["permessage-deflate; client_max_window_bits"])
        settings.compression = .off
        #expect(HandshakeRequest(settings: settings).head().headers["Sec-WebSocket-Extensions"].isEmpty)
    }

    @Test func theConfigKeyChoosesTheModeAndNamesTheChoicesWhenWrong() {
        let upstream = ConfigTestSupport.upstream
        #expect(ConfigTestSupport.load(upstream)?.configuration.upstreams.first?.compression == .auto)
        for mode in CompressionMode.allCases {
            #expect(ConfigTestSupport.load(upstream + "compression = \"\(mode.rawValue)\"\n")?.configuration.upstreams.first?.compression == mode)
        }
        ConfigTestSupport.expectError(upstream + "compression = \"requir\"\n", at: "upstream[0].compression", "did you mean \"require\"?")
        ConfigTestSupport.expectError(upstream + "compression = true\n", at: "upstream[0].compression", "auto", "off", "require")
    }

    // MARK: - Answers that are accepted

    /// Every combination of the four parameters a server may put in its answer to the default offer, in
    /// both parameter orders, gives exactly those agreed parameters.
    @Test func everyParameterCombinationOfAValidAnswerIsAgreed() {
        let bitChoices: [Int?] = [nil] + Array(8...15)
        var checked = 0
        for serverNoContext in [false, true] {
            for clientNoContext in [false, true] {
                for serverBits in bitChoices {
                    for clientBits in bitChoices {
                        var parameters: [String] = []
                        if serverNoContext { parameters.append("server_no_context_takeover") }
                        if clientNoContext { parameters.append("client_no_context_takeover") }
                        if let serverBits { parameters.append("server_max_window_bits=\(serverBits)") }
                        if let clientBits { parameters.append("client_max_window_bits=\(clientBits)") }
                        let expected = PerMessageDeflateParameters(
                            serverMaxWindowBits: serverBits, clientMaxWindowBits: clientBits,
                            serverNoContextTakeover: serverNoContext, clientNoContextTakeover: clientNoContext)
                        for order in [parameters, parameters.reversed()] {
                            let answer = (["permessage-deflate"] + order).joined(separator: "; ")
                            #expect(agreed(auto, [answer]) == .some(expected), "\(answer)")
                            #expect(agreed(DeflateNegotiation(mode: .require), [answer]) == .some(expected), "\(answer)")
                            checked += 1
                        }
                    }
                }
            }
        }
        #expect(checked == 2 * 2 * 9 * 9 * 2)
    }

    @Test func theInflaterWindowCoversWhatZlibReallyUses() {
        #expect(PerMessageDeflateParameters().inflateWindowBits == 15)
        #expect(PerMessageDeflateParameters(serverMaxWindowBits: 8).inflateWindowBits == 9)
        #expect(PerMessageDeflateParameters(serverMaxWindowBits: 9).inflateWindowBits == 9)
        #expect(PerMessageDeflateParameters(serverMaxWindowBits: 12).inflateWindowBits == 12)
    }

    @Test func syntaxVariantsTheGrammarAllowsAreAccepted() {
        let expected = PerMessageDeflateParameters(serverMaxWindowBits: 10, serverNoContextTakeover: true)
        for answer in [
            "permessage-deflate;server_max_window_bits=10;server_no_context_takeover",
            "  permessage-deflate ; server_max_window_bits = 10 ; server_no_context_takeover  ",
            "permessage-deflate; server_max_window_bits=\"10\"; server_no_context_takeover",
            "PerMessage-Deflate; Server_Max_Window_Bits=10; SERVER_NO_CONTEXT_TAKEOVER",
            "permessage-deflate; server_max_window_bits=10; server_no_context_takeover, ",
        ] {
            #expect(agreed(auto, [answer]) == .some(expected), "\(answer)")
        }
        // Split over two header lines is the same list.
        #expect(agreed(auto, ["", "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"]) == .some(expected))
    }

    @Test func anOfferOfLimitsIsHonouredByAnswersWithinThem() {
        let offer = PerMessageDeflateOffer(clientMaxWindowBits: .limit(12), serverMaxWindowBits: 10,
                                           clientNoContextTakeover: true, serverNoContextTakeover: true)
        let negotiation = DeflateNegotiation(mode: .auto, offer: offer)
        for serverBits in 8...10 {
            for clientBits in 8...12 {
                let answer = "permessage-deflate; server_no_context_takeover; server_max_window_bits=\(serverBits); client_max_window_bits=\(clientBits)"
                #expect(agreed(negotiation, [answer]) == .some(PerMessageDeflateParameters(
                    serverMaxWindowBits: serverBits, clientMaxWindowBits: clientBits, serverNoContextTakeover: true)))
            }
        }
        // client_no_context_takeover offered but not echoed is fine: it only binds us, and we send uncompressed.
        #expect(agreed(negotiation, ["permessage-deflate; server_no_context_takeover; server_max_window_bits=10"])
                == .some(PerMessageDeflateParameters(serverMaxWindowBits: 10, serverNoContextTakeover: true)))
    }

    // MARK: - Declined

    @Test func aDeclinedOfferIsUncompressedUnderAutoAnd1010UnderRequire() {
        #expect(agreed(auto, []) == .some(nil))
        #expect(agreed(auto, [""]) == .some(nil))
        #expect(agreed(DeflateNegotiation(mode: .off), []) == .some(nil))
        let error = failure(DeflateNegotiation(mode: .require), [])
        #expect(error?.closeCode == 1010)
        #expect(error?.message.contains("declined permessage-deflate") == true)
        #expect(error?.message.contains("compression = \"require\"") == true)
    }

    // MARK: - Answers that fail the connection (1002)

    @Test(arguments: [
        // RFC 7692 §7: unknown parameter, duplicate parameter, invalid value.
        ("permessage-deflate; x_unknown", "unknown parameter x_unknown"),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", "repeats parameter server_no_context_takeover"),
        ("permessage-deflate; server_max_window_bits=10; server_max_window_bits=11", "repeats parameter server_max_window_bits"),
        ("permessage-deflate; client_max_window_bits=10; client_max_window_bits=10", "repeats parameter client_max_window_bits"),
        ("permessage-deflate; server_no_context_takeover=1", "takes no value"),
        ("permessage-deflate; client_no_context_takeover=true", "takes no value"),
        ("permessage-deflate; server_max_window_bits", "server_max_window_bits must be 8 to 15, got no value"),
        ("permessage-deflate; server_max_window_bits=7", "must be 8 to 15"),
        ("permessage-deflate; server_max_window_bits=16", "must be 8 to 15"),
        ("permessage-deflate; server_max_window_bits=08", "must be 8 to 15"),
        ("permessage-deflate; server_max_window_bits=+9", "must be 8 to 15"),
        ("permessage-deflate; server_max_window_bits=abc", "must be 8 to 15"),
        ("permessage-deflate; server_max_window_bits=\"1 0\"", "not a token"),
        // §7.1.2.2: the answer's client_max_window_bits must have a value.
        ("permessage-deflate; client_max_window_bits", "client_max_window_bits must be 8 to 15, got no value"),
        ("permessage-deflate; client_max_window_bits=0", "must be 8 to 15"),
        // RFC 6455 §9.1: an extension that was not offered, or the same one twice.
        ("x-webkit-deflate-frame", "extension \"x-webkit-deflate-frame\", which was not offered"),
        ("permessage-deflate, x-other", "extension \"x-other\""),
        ("permessage-deflate, permessage-deflate", "accepted permessage-deflate twice"),
        // Grammar.
        ("; server_max_window_bits=10", "malformed"),
        ("permessage-deflate;", "malformed"),
        ("permessage-deflate; server_max_window_bits=", "malformed"),
        ("permessage-deflate server_no_context_takeover", "malformed"),
        ("permessage-deflate; server_max_window_bits=\"10", "malformed"),
    ])
    func invalidAnswersFailWith1002(answer: String, expected: String) {
        let error = failure(auto, [answer])
        #expect(error?.closeCode == 1002, "\(answer)")
        #expect(error?.message.contains(expected) == true, "\(answer): \(error?.message ?? "accepted")")
    }

    @Test func answersOutsideWhatWasOfferedFailWith1002() {
        // client_max_window_bits in the answer needs it in the offer (§7.1.2.2).
        let withoutClientBits = DeflateNegotiation(mode: .auto, offer: .init(clientMaxWindowBits: .notOffered))
        #expect(failure(withoutClientBits, ["permessage-deflate; client_max_window_bits=15"])?.message.contains("not offered") == true)
        #expect(agreed(withoutClientBits, ["permessage-deflate"]) == .some(PerMessageDeflateParameters()))

        // A limit on our window: the answer may lower it, not raise it.
        let clientLimit = DeflateNegotiation(mode: .auto, offer: .init(clientMaxWindowBits: .limit(10)))
        #expect(failure(clientLimit, ["permessage-deflate; client_max_window_bits=11"])?.message.contains("exceeds the 10") == true)

        // server_max_window_bits requested: the answer must carry it, at most as large (§7.1.2.1).
        let serverLimit = DeflateNegotiation(mode: .auto, offer: .init(serverMaxWindowBits: 10))
        for bits in 11...15 {
            #expect(failure(serverLimit, ["permessage-deflate; server_max_window_bits=\(bits)"])?.closeCode == 1002)
        }
        #expect(failure(serverLimit, ["permessage-deflate"])?.message.contains("without the server_max_window_bits=10") == true)

        // server_no_context_takeover requested: the answer must carry it (§7.1.1.1).
        let serverNoContext = DeflateNegotiation(mode: .auto, offer: .init(serverNoContextTakeover: true))
        #expect(failure(serverNoContext, ["permessage-deflate"])?.message.contains("without the server_no_context_takeover") == true)

        // Nothing offered: an answer enabling it anyway is a violation.
        let off = failure(DeflateNegotiation(mode: .off), ["permessage-deflate"])
        #expect(off?.closeCode == 1002)
        #expect(off?.message.contains("compression = \"off\"") == true)
    }

    @Test func theAgreedParametersReadAsAHeaderValue() {
        #expect(PerMessageDeflateParameters().description == "permessage-deflate")
        #expect(PerMessageDeflateParameters(serverMaxWindowBits: 10, clientMaxWindowBits: 9, serverNoContextTakeover: true,
                                            clientNoContextTakeover: true).description
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9")
    }
}

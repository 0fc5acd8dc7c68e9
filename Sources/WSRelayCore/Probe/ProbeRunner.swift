import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// `wsrelay probe`: one connection attempt to one upstream, taken stage by stage with the daemon's own
/// pieces (TLS context, proxy tunnel, handshake request, credential providers and token placement, message
/// assembler), reporting each stage as soon as it is done. The verdicts are the pure types' (`ProbeReport`,
/// `UpgradeResponseCheck`, `TLSFailureDiagnosis`); this type only does the I/O in between.
public struct ProbeRunner: Sendable {
    public struct Options: Sendable {
        /// How long to wait for the first message after the upgrade (none is a warning, not a failure).
        public var wait: Duration = .seconds(5)
        public init() {}
    }

    public let target: ProbeTarget
    public let options: Options
    public let environment: [String: String]
    let group: any EventLoopGroup

    public init(target: ProbeTarget, options: Options = .init(), environment: [String: String],
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.target = target
        self.options = options
        self.environment = environment
        self.group = group
    }

    /// Runs every stage until one fails; `emit` sees each stage as it completes (already redacted).
    public func run(emit: @escaping (ProbeStage) -> Void) async -> ProbeReport {
        let session = ProbeSession(runner: self, emit: emit)
        await session.run()
        await session.cleanUp()
        return session.report
    }
}

/// The state of one probe run: its connection, events, credential and report. Used by one task only.
final class ProbeSession {
    private let runner: ProbeRunner
    private let emit: (ProbeStage) -> Void
    private let events = ProbeEvents()
    private let clock = ContinuousClock()
    private(set) var report: ProbeReport
    private var channel: (any Channel)?
    private var store: CredentialStore?
    private var credentialTask: Task<(Result<IssuedToken, CredentialError>, Duration), Never>?
    /// The token value, once obtained: removed from everything shown.
    private var secret: (value: String, fingerprint: String)?

    private var settings: UpstreamSettings { runner.target.settings }
    private var url: WebSocketURL { runner.target.settings.url }

    init(runner: ProbeRunner, emit: @escaping (ProbeStage) -> Void) {
        self.runner = runner
        self.emit = emit
        self.report = ProbeReport(target: runner.target.label)
    }

    /// Records and shows a stage; false when it failed (the probe stops there).
    @discardableResult
    private func record(_ stage: ProbeStage) -> Bool {
        var shown = stage
        if let secret { shown = shown.redacting(secret.value, with: "<token \(secret.fingerprint)>") }
        report.stages.append(shown)
        emit(shown)
        return shown.verdict != .failed
    }

    func run() async {
        startCredentialFetch()
        guard let addresses = await dns() else { return }
        guard await tcp(addresses) else { return }
        if let proxy = runner.target.proxy, !(await tunnel(through: proxy)) { return }
        if url.secure, !(await tls()) { return }
        var credential: AttemptCredential?
        if credentialTask != nil {
            guard let obtained = await credentials() else { return }
            credential = obtained
        }
        guard await upgrade(credential: credential) else { return }
        guard await firstMessage(credential: credential) else { return }
        await ping()
        await closeGracefully()
    }

    func cleanUp() async {
        credentialTask?.cancel()
        _ = await credentialTask?.value
        await store?.shutdown()
        if let channel { try? await channel.close() }
    }

    // MARK: - Stages

    private func dns() async -> [SocketAddress]? {
        let host = runner.target.proxy?.host ?? url.host
        let port = runner.target.proxy?.port ?? url.port
        let start = clock.now
        let result = await AddressResolver.resolve(host: host, port: port)
        let elapsed = clock.now - start
        switch result {
        case .failure(let failure):
            let what = runner.target.proxy == nil ? "" : " (the proxy's host)"
            record(ProbeStage(.dns, .failed, elapsed: elapsed, "\(failure)\(what)"))
            return nil
        case .success(let addresses):
            let list = addresses.compactMap(\.ipAddress).joined(separator: ", ")
            let literal = list == host || "[\(list)]" == host
            let summary = runner.target.proxy == nil
                ? (literal ? "\(host) (an IP address: no lookup)" : "\(host): \(list)")
                : "proxy \(host): \(list) (the proxy resolves \(url.host))"
            record(ProbeStage(.dns, .ok, elapsed: elapsed, summary))
            return addresses
        }
    }

    private func tcp(_ addresses: [SocketAddress]) async -> Bool {
        let timeout = settings.connectTimeout
        let bootstrap = ClientBootstrap(group: runner.group)
            .connectTimeout(.nanoseconds(timeout.nanosecondsClamped))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
        var tried: [ProbeStage.Detail] = []
        var firstFailure: String?
        let start = clock.now
        for address in addresses {
            let shown = Self.show(address)
            do {
                let channel = try await bootstrap.connect(to: address).get()
                self.channel = channel
                let events = self.events
                let loop = channel.eventLoop
                // One loop turn late, so frames delivered while the channel goes inactive are posted first.
                channel.closeFuture.whenComplete { _ in loop.execute { events.post(.closed) } }
                let local = channel.localAddress.map { " from \(Self.show($0))" } ?? ""
                let peer = runner.target.proxy == nil ? shown : "the proxy at \(shown)"
                record(ProbeStage(.tcp, .ok, elapsed: clock.now - start, "connected to \(peer)\(local)", details: tried))
                return true
            } catch {
                tried.append(.init(shown, ConnectFailureText.short(error)))
                if firstFailure == nil { firstFailure = ConnectFailureText.explain(error, address: shown, timeout: timeout) }
            }
        }
        record(ProbeStage(.tcp, .failed, elapsed: clock.now - start, firstFailure ?? "no address to connect to",
                          details: tried.count > 1 ? tried : []))
        return false
    }

    private func tunnel(through proxy: ProxyTarget) async -> Bool {
        guard let channel else { return false }
        let events = self.events
        let start = clock.now
        let target = (host: url.host, port: url.port)
        do {
            try await channel.eventLoop.submit {
                let handler = HTTPConnectProxyHandler(
                    targetHost: target.host, targetPort: target.port, authorization: proxy.authorization,
                    onEstablished: { _ in events.post(.proxyEstablished) },
                    onFailed: { message in events.post(.proxyFailed(message)) })
                try channel.pipeline.syncOperations.addHandler(ProxyStatusLineRecorder(events: events))
                try channel.pipeline.syncOperations.addHandler(handler)
            }.get()
        } catch {
            return record(ProbeStage(.proxy, .failed, elapsed: clock.now - start, "cannot set up the CONNECT request: \(error)"))
        }
        var statusLine: String?
        let deadline = clock.now + settings.handshakeTimeout
        while true {
            let event = await events.next(timeout: max(.zero, deadline - clock.now))
            let elapsed = clock.now - start
            let details = statusLine.map { [ProbeStage.Detail("status line", $0)] } ?? []
            switch event {
            case .proxyStatusLine(let line):
                statusLine = line
            case .proxyEstablished:
                return record(ProbeStage(.proxy, .ok, elapsed: elapsed,
                                         "tunnel to \(url.host):\(url.port) open: \(statusLine ?? "200")", details: []))
            case .proxyFailed(let message):
                return record(ProbeStage(.proxy, .failed, elapsed: elapsed, message,
                                         details: statusLine.map { message.contains($0) } == true ? [] : details))
            case .closed:
                return record(ProbeStage(.proxy, .failed, elapsed: elapsed, "the proxy closed the connection without answering CONNECT", details: details))
            case nil:
                return record(ProbeStage(.proxy, .failed, elapsed: elapsed,
                                         "no answer to CONNECT within \(DurationParser.format(settings.handshakeTimeout))", details: details))
            default:
                continue
            }
        }
    }

    private func tls() async -> Bool {
        guard let channel else { return false }
        let start = clock.now
        let tlsSettings = settings.tls
        let trust = tlsSettings.caFile.map { "ca_file \($0)" } ?? "the system trust store"
        let sni = TLSContextFactory.serverNameIndication(host: url.host, override: tlsSettings.serverName)
        let expectedName = tlsSettings.serverName ?? url.host
        let context: NIOSSLContext
        do {
            context = try TLSContextFactory.makeContext(tlsSettings)
        } catch {
            return record(ProbeStage(.tls, .failed, elapsed: clock.now - start, "TLS setup: \(error)"))
        }
        let events = self.events
        do {
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: sni))
                try channel.pipeline.syncOperations.addHandler(ProbeTLSWatcher(events: events))
            }.get()
        } catch {
            return record(ProbeStage(.tls, .failed, elapsed: clock.now - start, "TLS setup: \(error)"))
        }
        var details = [ProbeStage.Detail("SNI", sni ?? "none (IP address)")]
        func describe(_ certificate: CertificateSummary) {
            details.append(.init("subject", certificate.subject))
            details.append(.init("issuer", certificate.issuer))
            let remaining = certificate.notAfter.secondsSinceEpoch - WallClockTime.now().secondsSinceEpoch
            details.append(.init("notAfter", "\(certificate.notAfter.rfc3339) (\(ProbeCredentialReport.relative(remaining)))"))
            if !certificate.names.isEmpty { details.append(.init("names", certificate.names.joined(separator: ", "))) }
        }
        let deadline = clock.now + settings.handshakeTimeout
        while true {
            let event = await events.next(timeout: max(.zero, deadline - clock.now))
            let elapsed = clock.now - start
            switch event {
            case .tlsCompleted(let version, let alpn, let certificate):
                let protocolName = version.map(Self.name) ?? "TLS"
                if let certificate {
                    describe(certificate)
                    if !tlsSettings.insecureSkipVerify, !certificate.matches(host: expectedName) {
                        let address = channel.remoteAddress?.ipAddress ?? "the connected address"
                        details.append(.init("note", "the certificate does not name \(expectedName); it was accepted because it names the connected IP address \(address)"))
                    }
                }
                if let alpn { details.append(.init("ALPN", alpn)) }
                if tlsSettings.insecureSkipVerify {
                    return record(ProbeStage(.tls, .warning, elapsed: elapsed,
                                             "\(protocolName), certificate NOT verified (insecure_skip_verify)", details: details))
                }
                details.append(.init("verified by", trust))
                return record(ProbeStage(.tls, .ok, elapsed: elapsed,
                                         "\(protocolName), certificate verified, SNI \(sni ?? "none")", details: details))
            case .tlsFailed(let error, let hostnameFailure, let certificate):
                let diagnosis = TLSFailureDiagnosis.diagnose(
                    error: error, hostnameFailure: hostnameFailure, certificate: certificate, expectedName: expectedName,
                    trust: trust, now: .now())
                if let certificate { describe(certificate) }
                details.append(.init("trust", trust))
                for note in diagnosis.notes { details.append(.init("also", note)) }
                details.append(.init("error", TLSFailureDiagnosis.shortError(error)))
                let verification = [.unknownCA, .selfSigned, .expired, .notYetValid, .hostnameMismatch, .unverified].contains(diagnosis.cause)
                return record(ProbeStage(.tls, .failed, elapsed: elapsed,
                                         (verification ? "certificate verification failed: " : "") + diagnosis.reason,
                                         details: details))
            case .closed:
                return record(ProbeStage(.tls, .failed, elapsed: elapsed,
                                         "the server closed the connection during the TLS handshake", details: details))
            case nil:
                return record(ProbeStage(.tls, .failed, elapsed: elapsed,
                                         "no TLS handshake within \(DurationParser.format(settings.handshakeTimeout)) (is this a TLS port?)",
                                         details: details))
            default:
                continue
            }
        }
    }

    private func startCredentialFetch() {
        guard let auth = runner.target.auth else { return }
        var logger = Logger(label: "wsrelay.probe", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        let store = CredentialStore(settings: [auth], stateDir: runner.target.stateDir, environment: runner.environment,
                                    group: runner.group, logger: logger)
        self.store = store
        guard let credential = store.credential(named: auth.name) else { return }
        let clock = self.clock
        credentialTask = Task {
            let start = clock.now
            do throws(CredentialError) {
                let token = try await credential.token()
                return (.success(token), clock.now - start)
            } catch {
                return (.failure(error), clock.now - start)
            }
        }
    }

    private func credentials() async -> AttemptCredential? {
        guard let auth = runner.target.auth, let task = credentialTask, let store,
              let credential = store.credential(named: auth.name) else { return nil }
        let (result, elapsed) = await task.value
        if case .success(let token) = result { secret = (token.value, token.fingerprint) }
        let stage = ProbeCredentialReport.stage(auth: auth, type: credential.type, result: result, elapsed: elapsed, now: .now())
        guard record(stage), case .success(let token) = result else { return nil }
        return AttemptCredential(token: token, placement: auth.placement, renewSkew: auth.refreshSkew)
    }

    private func upgrade(credential: AttemptCredential?) async -> Bool {
        guard let channel else { return false }
        let start = clock.now
        var request = HandshakeRequest(settings: settings)
        let shownTarget = request.target
        credential?.apply(&request)
        let key = NIOWebSocketClientUpgrader.randomRequestKey()
        let events = self.events
        let maxMessageSize = settings.maxMessageSize
        let head = request.head()
        let deflate = request.deflate
        do {
            try await channel.eventLoop.submit {
                try WebSocketUpgradePipeline.add(
                    to: channel, requestKey: key, maxMessageSize: maxMessageSize,
                    beforeUpgrade: [ProbeResponseRecorder(events: events)], afterUpgrade: [ProbeErrorCatcher(events: events)]
                ) { channel, response in
                    // Frames after an unusable answer never count: the stage fails on the same judgement.
                    let compression = (try? deflate.judge(response.headers["Sec-WebSocket-Extensions"]).get()) ?? nil
                    let decoder = try InboundMessageDecoder(maxMessageSize: maxMessageSize, compression: compression)
                    try channel.pipeline.syncOperations.addHandler(ProbeFrameHandler(events: events, decoder: decoder))
                    events.post(.upgraded(response))
                }
            }.get()
        } catch {
            return record(ProbeStage(.upgrade, .failed, elapsed: clock.now - start, "cannot set up the HTTP handshake: \(error)"))
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)

        let tokenInRequest = credential != nil && credential?.authMessage == nil
        let requestLine = ProbeStage.Detail("request", "GET \(shownTarget)" + (tokenInRequest ? " (with the token)" : ""))
        var response: HTTPResponseHead?
        func judged(_ head: HTTPResponseHead, elapsed: Duration) -> ProbeStage {
            let check = UpgradeResponseCheck(
                version: "HTTP/\(head.version.major).\(head.version.minor)", status: Int(head.status.code),
                reason: head.status.reasonPhrase, headers: head.headers.map { ($0.name, $0.value) })
            var stage = check.stage(elapsed: elapsed, key: key, offered: request.subprotocols, hasCredentials: credential != nil,
                                    deflate: request.deflate)
            stage.details.insert(requestLine, at: 0)
            return stage
        }
        let deadline = clock.now + settings.handshakeTimeout
        while true {
            let event = await events.next(timeout: max(.zero, deadline - clock.now))
            let elapsed = clock.now - start
            switch event {
            case .responseHead(let head):
                response = head
                if head.status != .switchingProtocols { return record(judged(head, elapsed: elapsed)) }
            case .upgraded(let head):
                return record(judged(head, elapsed: elapsed))
            case .error(let text):
                if let response {
                    var stage = judged(response, elapsed: elapsed)
                    if stage.verdict != .failed {
                        stage.verdict = .failed
                        stage.summary = "\(response.version) \(response.status.code): the handshake failed: \(text)"
                    }
                    return record(stage)
                }
                return record(ProbeStage(.upgrade, .failed, elapsed: elapsed, "handshake failed: \(text)", details: [requestLine]))
            case .closed:
                if let response { return record(judged(response, elapsed: elapsed)) }
                return record(ProbeStage(.upgrade, .failed, elapsed: elapsed,
                                         "the server closed the connection without answering the upgrade request", details: [requestLine]))
            case nil:
                return record(ProbeStage(.upgrade, .failed, elapsed: elapsed,
                                         "no answer to the upgrade request within \(DurationParser.format(settings.handshakeTimeout))",
                                         details: [requestLine]))
            default:
                continue
            }
        }
    }

    private func send(_ message: OutgoingMessage) {
        guard let channel else { return }
        var buffer = channel.allocator.buffer(capacity: 0)
        let opcode: WebSocketOpcode
        switch message {
        case .text(let text): buffer.writeString(text); opcode = .text
        case .binary(let bytes): buffer.writeBytes(bytes); opcode = .binary
        }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: buffer), promise: nil)
    }

    private func firstMessage(credential: AttemptCredential?) async -> Bool {
        let start = clock.now
        var details: [ProbeStage.Detail] = []
        if let authMessage = credential?.authMessage {
            send(.text(authMessage))
            details.append(.init("sent", "auth message (placement = \"message\")"))
            if let pattern = credential?.authOKPattern {
                let timeout = credential?.authTimeout ?? .seconds(10)
                let deadline = clock.now + timeout
                var matched = false
                while !matched {
                    let event = await events.next(timeout: max(.zero, deadline - clock.now))
                    switch event {
                    case .message(let kind, _, let head) where kind == .text && String(decoding: head, as: UTF8.self).contains(pattern):
                        matched = true
                    case .message:
                        continue
                    case .peerClosed(let code, let reason):
                        return record(ProbeStage(.message, .failed, elapsed: clock.now - start,
                                                 "the server closed after the auth message: \(Self.closeText(code, reason))", details: details))
                    case .closed, .error:
                        return record(ProbeStage(.message, .failed, elapsed: clock.now - start,
                                                 "the connection ended after the auth message", details: details))
                    case nil:
                        return record(ProbeStage(.message, .failed, elapsed: clock.now - start,
                                                 "no reply matching auth_ok \"\(pattern)\" within \(DurationParser.format(timeout))",
                                                 details: details))
                    default:
                        continue
                    }
                }
                details.append(.init("auth", "reply matched auth_ok \"\(pattern)\""))
            }
        }
        if !settings.subscribe.isEmpty {
            for message in settings.subscribe { send(message) }
            details.append(.init("sent", "\(settings.subscribe.count) subscribe message\(settings.subscribe.count == 1 ? "" : "s")"))
        }
        let deadline = clock.now + runner.options.wait
        while true {
            let event = await events.next(timeout: max(.zero, deadline - clock.now))
            let elapsed = clock.now - start
            switch event {
            case .message(let kind, let size, let head):
                details.append(.init("preview", Self.preview(kind: kind, size: size, head: head)))
                return record(ProbeStage(.message, .ok, elapsed: elapsed, "\(kind == .text ? "text" : "binary"), \(size) bytes", details: details))
            case .peerClosed(let code, let reason):
                return record(ProbeStage(.message, .failed, elapsed: elapsed,
                                         "the server closed the connection: \(Self.closeText(code, reason))", details: details))
            case .error(let text):
                return record(ProbeStage(.message, .failed, elapsed: elapsed, text, details: details))
            case .closed:
                return record(ProbeStage(.message, .failed, elapsed: elapsed,
                                         "the connection dropped without a close frame (1006)", details: details))
            case nil:
                return record(ProbeStage(.message, .warning, elapsed: elapsed,
                                         "none within \(DurationParser.format(runner.options.wait)) (the server may send only on events, or want a subscribe message)",
                                         details: details))
            default:
                continue
            }
        }
    }

    private func ping() async {
        guard let channel else { return }
        let payload = (0..<8).map { _ in UInt8.random(in: 0...255) }
        var buffer = channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        let start = clock.now
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: buffer), promise: nil)
        let timeout = settings.pongTimeout
        let deadline = start + timeout
        while true {
            let event = await events.next(timeout: max(.zero, deadline - clock.now))
            let elapsed = clock.now - start
            switch event {
            case .pong(let bytes) where bytes == payload:
                record(ProbeStage(.ping, .ok, elapsed: elapsed, "pong after \(ProbeRendering.formatElapsed(elapsed)) (RTT)"))
                return
            case .peerClosed(let code, let reason):
                record(ProbeStage(.ping, .failed, elapsed: elapsed, "the server closed the connection: \(Self.closeText(code, reason))"))
                return
            case .closed, .error:
                record(ProbeStage(.ping, .failed, elapsed: elapsed, "the connection ended before a pong"))
                return
            case nil:
                if settings.appPing != nil {
                    record(ProbeStage(.ping, .warning, elapsed: elapsed,
                                      "no pong within \(DurationParser.format(timeout)) (app_ping is configured, so the daemon does not rely on pongs)"))
                } else {
                    record(ProbeStage(.ping, .failed, elapsed: elapsed,
                                      "no pong within \(DurationParser.format(timeout)) (pong_timeout): the daemon would drop this connection as dead"))
                }
                return
            default:
                continue
            }
        }
    }

    /// Ends the connection the polite way: close frame 1000, then wait briefly for the server's answer.
    private func closeGracefully() async {
        guard let channel else { return }
        var buffer = channel.allocator.buffer(capacity: 32)
        buffer.writeInteger(CloseCode.normal)
        buffer.writeString("wsrelay probe done")
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buffer), promise: nil)
        let deadline = clock.now + .seconds(2)
        while let event = await events.next(timeout: max(.zero, deadline - clock.now)) {
            if case .closed = event { break }
            if case .peerClosed = event { break }
        }
    }

    // MARK: - Formatting

    static func show(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    static func name(_ version: TLSVersion) -> String {
        switch version {
        case .tlsv1: return "TLSv1.0"
        case .tlsv11: return "TLSv1.1"
        case .tlsv12: return "TLSv1.2"
        case .tlsv13: return "TLSv1.3"
        }
    }

    /// The start of a message: text as text (control characters escaped), binary as hex bytes.
    static func preview(kind: ReceivedMessage.Kind, size: Int, head: [UInt8]) -> String {
        if kind == .binary {
            let shown = head.prefix(24).map { byte in
                let hex = String(byte, radix: 16)
                return hex.count == 1 ? "0" + hex : hex
            }.joined(separator: " ")
            return size > 24 ? shown + " …" : shown
        }
        var shown = ""
        for scalar in String(decoding: head.prefix(120), as: UTF8.self).unicodeScalars {
            switch scalar {
            case "\n": shown += "\\n"
            case "\r": shown += "\\r"
            case "\t": shown += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    shown += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    shown.unicodeScalars.append(scalar)
                }
            }
        }
        return size > 120 ? shown + "…" : shown
    }

    static func closeText(_ code: UInt16?, _ reason: String) -> String {
        guard let code else { return "close frame without a code" }
        var text = reason.isEmpty ? "\(code)" : "\(code) \(reason)"
        switch code {
        case 4001, 4003: text += " (commonly: credentials rejected or expired)"
        case CloseCode.policyViolation: text += " (policy violation: often authentication)"
        case CloseCode.goingAway: text += " (server going away)"
        case CloseCode.internalError: text += " (server error)"
        default: break
        }
        return text
    }
}

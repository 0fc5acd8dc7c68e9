import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import NIOWebSocket

/// Receives what happens on one connection; every call arrives on the connection's event loop.
public protocol UpstreamConnectionDelegate: AnyObject {
    func connectionDidOpen(_ connection: UpstreamConnection, subprotocol: String?)
    /// The complete messages of one read burst, in order.
    func connection(_ connection: UpstreamConnection, didReceive messages: [InboundMessage])
    func connection(_ connection: UpstreamConnection, didReceivePong payload: ByteBuffer)
    func connection(_ connection: UpstreamConnection, didFailToOpen failure: ConnectionFailure)
    func connection(_ connection: UpstreamConnection, didClose info: ConnectionCloseInfo)
}

public struct InboundMessage: Sendable {
    public var kind: ReceivedMessage.Kind
    public var payload: ByteBuffer
    public var receivedAt: WallClockTime
}

/// How an open connection ended.
public struct ConnectionCloseInfo: Sendable, Equatable, CustomStringConvertible {
    public enum Initiator: Sendable, Equatable {
        /// The server sent a close frame (we answered it).
        case peer
        /// We closed (shutdown, removal, reconnect request, dead peer).
        case local
        /// The server broke the protocol; we closed with `code`.
        case protocolViolation
        /// The TCP connection dropped without a closing handshake (1006).
        case transport
    }

    /// The close code: the server's (1005 if its close frame had none), ours, or 1006 for a drop.
    public var code: UInt16
    public var reason: String
    public var initiator: Initiator

    public var description: String {
        let who: String
        switch initiator {
        case .peer: who = "server closed"
        case .local: who = "closed by wsrelay"
        case .protocolViolation: who = "protocol error"
        case .transport: who = "connection lost"
        }
        return reason.isEmpty ? "\(who) (\(code))" : "\(who) (\(code) \(reason))"
    }
}

/// One WebSocket client connection: TCP (+TLS) connect, RFC 6455 upgrade, frames, closing handshake.
///
/// A thin I/O shell: the phases and the closing handshake are decided by `WebSocketConnectionStateMachine`,
/// what each frame means by its `InboundMessageDecoder` (inflater and `WebSocketMessageAssembler`), and
/// supervision (keepalive, reconnects) by whoever owns the connection. The same code serves the daemon,
/// `probe`, and the Autobahn conformance client. Confined to one event loop; not thread-safe by design.
// @unchecked Sendable: every `var` (machine, channel, deadline, decoder, pendingData, burst, delegate, ...) is confined to `loop`.
public final class UpstreamConnection: @unchecked Sendable {
    public struct Options: Sendable {
        public var connectTimeout: Duration = .seconds(10)
        public var handshakeTimeout: Duration = .seconds(10)
        public var maxMessageSize: Int = 16 * 1024 * 1024
        /// How long to wait for the other side's part of a closing handshake before closing TCP ourselves.
        public var closeTimeout: Duration = .seconds(2)
        /// Tunnel through this HTTP proxy (CONNECT) first.
        public var proxy: ProxyTarget?
        public init() {}
    }

    public let loop: any EventLoop
    public let request: HandshakeRequest
    public let options: Options
    private let tls: NIOSSLContext?
    private let serverName: String?
    /// Held strongly: it is the attempt's own small object; set to nil to silence a superseded attempt.
    public var delegate: (any UpstreamConnectionDelegate)?

    // The properties marked `@exclusivity(unchecked)` are touched for every frame, and the runtime's dynamic
    // exclusivity checks on them cost about 340 of the relay's 6,583 instructions per 100-byte message
    // (bench/RESULTS.md, issue 15, session 8). They need no such check: the connection lives on its event
    // loop, and no mutation of them calls out of this class (the state machine and the decoder are values
    // without callbacks, and the delegate gets the burst only after it was moved out).
    @exclusivity(unchecked) private var machine: WebSocketConnectionStateMachine
    private var channel: (any Channel)?
    private var deadline: Scheduled<Void>?
    /// Reads frames once the upgrade is done; owned here so the frame handler stays a plain forwarder.
    @exclusivity(unchecked) private var decoder: InboundMessageDecoder?
    /// Data frames waiting for the channel to become writable; control frames never wait here.
    private var pendingData: [WebSocketFrame] = []
    /// Our close frame's write, once sent: the channel is closed only after it (see `.closeChannel`).
    private var closeFrameWritten: EventLoopFuture<Void>?
    /// The complete messages of the current read burst, handed to the delegate together.
    @exclusivity(unchecked) private var burst: [InboundMessage] = []
    /// When the last frame of any kind arrived (for idle detection): the start of its read burst.
    @exclusivity(unchecked) public private(set) var lastFrameAt: NIODeadline = .now()
    /// The wall time the current read burst's frames arrived (nil between bursts). The clocks are read at a
    /// burst's first frame, `lastFrameAt` with it: every frame of one burst came out of the same socket read,
    /// and two clock reads per frame were about a tenth of the relay's CPU per 100-byte message from the
    /// simulator (bench/RESULTS.md, issue 15, session 7).
    @exclusivity(unchecked) private var burstReceivedAt: WallClockTime?
    public private(set) var subprotocol: String?
    /// The agreed permessage-deflate parameters; nil while uncompressed (or not yet open).
    public private(set) var compression: PerMessageDeflateParameters?
    /// Bytes in and out of the inflater so far; nil on an uncompressed connection.
    public var compressionStats: CompressionStats? { compression == nil ? nil : decoder?.inflater?.stats }

    public init(loop: any EventLoop, request: HandshakeRequest, tls: NIOSSLContext?, serverName: String?, options: Options) {
        self.loop = loop
        self.request = request
        self.tls = tls
        self.serverName = serverName
        self.options = options
        let target = "\(request.url.host):\(request.url.port)"
        self.machine = WebSocketConnectionStateMachine(
            timeouts: .init(connect: options.connectTimeout, handshake: options.handshakeTimeout, close: options.closeTimeout),
            target: target)
    }

    // MARK: - Commands (call on `loop`)

    public func start() {
        loop.preconditionInEventLoop()
        let actions = machine.start()
        guard !actions.isEmpty else { return }
        perform(actions)
        let proxy = options.proxy
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(options.connectTimeout.nanosecondsClamped))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.configure(channel) }
            }
        let (host, port) = proxy.map { ($0.host, $0.port) } ?? (request.url.host, request.url.port)
        bootstrap.connect(host: host, port: port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                attach(channel)
            case .failure(let error):
                if Self.isDescriptorExhaustion(error) { DescriptorReserve.process.exhausted() }
                let via = proxy.map { " via proxy \($0)" } ?? ""
                perform(machine.failOpen(.connect("connect to \(host):\(port)\(via) failed: \(Self.describe(error))")))
            }
        }
    }

    /// Runs the connection on a channel that is already connected (a test's `EmbeddedChannel` or
    /// `NIOAsyncTestingChannel`): the same pipeline and the same steps as after a real TCP connect.
    func start(on channel: any Channel) throws {
        loop.preconditionInEventLoop()
        let actions = machine.start()
        guard !actions.isEmpty else { return }
        perform(actions)
        try configure(channel)
        attach(channel)
    }

    public func send(_ message: OutgoingMessage) {
        loop.preconditionInEventLoop()
        guard machine.isOpen, let channel else { return }
        var buffer = channel.allocator.buffer(capacity: 0)
        let opcode: WebSocketOpcode
        switch message {
        case .text(let text): buffer.writeString(text); opcode = .text
        case .binary(let bytes): buffer.writeBytes(bytes); opcode = .binary
        }
        sendData(WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: buffer))
    }

    /// Sends an already-framed data payload (used by the echo client for exact echoes).
    public func send(kind: ReceivedMessage.Kind, payload: ByteBuffer) {
        loop.preconditionInEventLoop()
        guard machine.isOpen else { return }
        sendData(WebSocketFrame(fin: true, opcode: kind == .text ? .text : .binary, maskKey: .random(), data: payload))
    }

    /// Sends a data message whose payload the caller already compressed with the agreed permessage-deflate
    /// parameters (RSV1 set). Only the conformance echo client uses it: the daemon's own sends stay
    /// uncompressed.
    public func sendCompressed(kind: ReceivedMessage.Kind, payload: ByteBuffer) {
        loop.preconditionInEventLoop()
        guard machine.isOpen, compression != nil else { return }
        sendData(WebSocketFrame(fin: true, rsv1: true, opcode: kind == .text ? .text : .binary, maskKey: .random(), data: payload))
    }

    /// Pings bypass queued data so a long outgoing backlog cannot delay them past the pong deadline.
    public func sendPing(_ payload: [UInt8]) {
        loop.preconditionInEventLoop()
        guard machine.isOpen, let channel else { return }
        var buffer = channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: buffer), promise: nil)
    }

    /// Starts the closing handshake with `code`; TCP is closed when the server answers or after `closeTimeout`.
    public func close(code: UInt16, reason: String) {
        loop.preconditionInEventLoop()
        perform(machine.close(code: code, reason: reason))
    }

    /// Drops the connection at once (dead peer): a close frame is attempted but not waited for.
    public func abort(code: UInt16, reason: String) {
        loop.preconditionInEventLoop()
        perform(machine.abort(code: code, reason: reason))
    }

    /// Back-pressure from the sinks: stop or resume reading from the socket.
    public func setReading(_ enabled: Bool) {
        loop.preconditionInEventLoop()
        guard let channel else { return }
        channel.setOption(ChannelOptions.autoRead, value: enabled).whenComplete { _ in }
        if enabled { channel.read() }
    }

    // MARK: - Pipeline

    private func configure(_ channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(SmallReadPacer())
        if let proxy = options.proxy {
            try channel.pipeline.syncOperations.addHandler(makeProxyHandler(proxy))
        } else {
            try configurePipeline(channel)
        }
    }

    /// TCP is connected: keep the channel, or close it when the attempt was given up meanwhile.
    private func attach(_ channel: any Channel) {
        guard machine.acceptsChannel() else {
            channel.close(promise: nil)
            return
        }
        self.channel = channel
        channel.closeFuture.whenComplete { [self] _ in self.channelClosed() }
        if tls == nil && options.proxy == nil { sendUpgradeRequest() }
    }

    private func makeProxyHandler(_ proxy: ProxyTarget) -> HTTPConnectProxyHandler {
        HTTPConnectProxyHandler(
            targetHost: request.url.host, targetPort: request.url.port, authorization: proxy.authorization,
            onEstablished: { [self] context in
                do {
                    try configurePipeline(context.channel)
                    if tls == nil { sendUpgradeRequest() }
                } catch {
                    perform(machine.failOpen(.connect("after proxy CONNECT: \(Self.describe(error))")))
                }
            },
            onFailed: { [self] message in perform(machine.failOpen(.connect(message))) }
        )
    }

    private func configurePipeline(_ channel: any Channel) throws {
        let ops = channel.pipeline.syncOperations
        if let tls {
            try ops.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
        }
        try WebSocketUpgradePipeline.add(
            to: channel, requestKey: NIOWebSocketClientUpgrader.randomRequestKey(),
            maxMessageSize: options.maxMessageSize, afterUpgrade: [HandshakeResponseHandler(connection: self)]
        ) { [self] channel, response in
            let negotiated = request.deflate.judge(response.headers["Sec-WebSocket-Extensions"])
            decoder = try InboundMessageDecoder(maxMessageSize: options.maxMessageSize,
                                                compression: (try? negotiated.get()) ?? nil)
            try channel.pipeline.syncOperations.addHandler(WebSocketFrameHandler(connection: self))
            self.upgraded(response, negotiated: negotiated)
        }
    }

    func tlsHandshakeCompleted() {
        sendUpgradeRequest()
    }

    private func sendUpgradeRequest() {
        guard channel != nil else { return }
        perform(machine.transportReady())
    }

    private func upgraded(_ response: HTTPResponseHead, negotiated: Result<PerMessageDeflateParameters?, DeflateNegotiationError>) {
        let chosen = response.headers.first(name: "Sec-WebSocket-Protocol")
        let unoffered = chosen.flatMap { request.subprotocols.contains($0) ? nil : $0 }
        let actions = machine.upgraded(unofferedSubprotocol: unoffered, negotiation: negotiated)
        if machine.isOpen {
            compression = (try? negotiated.get()) ?? nil
            subprotocol = chosen
            lastFrameAt = .now()
        }
        perform(actions)
    }

    // MARK: - Events from the handlers

    func upgradeRejected(status: HTTPResponseStatus, headers: HTTPHeaders) {
        perform(machine.failOpen(.upgradeRejected(status: Int(status.code), reason: status.reasonPhrase,
                                                  headers: headers.map { ($0.name, $0.value) })))
    }

    func pipelineError(_ error: any Error) {
        perform(machine.pipelineError(classify(error)))
    }

    /// What the machine needs to know about a pipeline error.
    private func classify(_ error: any Error) -> WebSocketConnectionStateMachine.PipelineError {
        let description = Self.describe(error)
        var classified = WebSocketConnectionStateMachine.PipelineError(description: description, handshakeDescription: description)
        if let upgradeError = error as? NIOHTTPClientUpgradeError, upgradeError == .upgraderDeniedUpgrade {
            classified.handshakeDescription = "invalid Sec-WebSocket-Accept in the server's 101 response"
        } else if let upgradeError = error as? NIOHTTPClientUpgradeError, upgradeError == .responseProtocolNotFound {
            classified.handshakeDescription = "101 response without Upgrade: websocket"
        }
        if let wsError = error as? NIOWebSocketError {
            switch wsError {
            case .invalidFrameLength:
                classified.frameViolation = (CloseCode.messageTooBig, "frame exceeds max_message_size \(options.maxMessageSize)")
            default:
                classified.frameViolation = (CloseCode.protocolError, "\(wsError)")
            }
        }
        return classified
    }

    func frameReceived(_ frame: WebSocketFrame) {
        let receivedAt = burstReceivedAt ?? startBurst()
        guard let action = decoder?.receive(frame) else { return }
        switch action {
        case .none:
            break
        case .message(let kind, let payload):
            guard machine.deliversMessages else { return }
            burst.append(InboundMessage(kind: kind, payload: payload, receivedAt: receivedAt))
        case .replyPong(let payload):
            guard machine.isOpen, let channel else { return }
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: payload), promise: nil)
        case .pong(let payload):
            delegate?.connection(self, didReceivePong: payload)
        case .peerClosed(let code, let reason):
            flushBurst()
            perform(machine.peerClosed(code: code, reason: reason))
        case .fail(let code, let reason):
            flushBurst()
            perform(machine.protocolViolation(code: code, reason: reason))
        }
    }

    func readBurstComplete() {
        burstReceivedAt = nil
        flushBurst()
    }

    private func startBurst() -> WallClockTime {
        lastFrameAt = .now()
        let now = WallClockTime.now()
        burstReceivedAt = now
        return now
    }

    private func flushBurst() {
        guard !burst.isEmpty else { return }
        let messages = burst
        burst.removeAll(keepingCapacity: true)
        delegate?.connection(self, didReceive: messages)
    }

    func writabilityChanged() {
        guard let channel else { return }
        while channel.isWritable, !pendingData.isEmpty {
            channel.write(pendingData.removeFirst(), promise: nil)
        }
        channel.flush()
    }

    private func sendData(_ frame: WebSocketFrame) {
        guard let channel else { return }
        if channel.isWritable && pendingData.isEmpty {
            channel.writeAndFlush(frame, promise: nil)
        } else {
            pendingData.append(frame)
        }
    }

    private func channelClosed() {
        flushBurst()
        perform(machine.channelClosed())
    }

    // MARK: - The machine's actions

    private func perform(_ actions: [WebSocketConnectionStateMachine.Action]) {
        for action in actions {
            switch action {
            case .armDeadline(let timeout):
                deadline?.cancel()
                deadline = loop.assumeIsolated().scheduleTask(in: .nanoseconds(timeout.nanosecondsClamped)) { [self] in
                    perform(machine.deadlinePassed())
                }
            case .cancelDeadline:
                deadline?.cancel()
                deadline = nil
            case .sendUpgradeRequest:
                channel?.write(HTTPClientRequestPart.head(request.head()), promise: nil)
                channel?.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            case .sendCloseFrame(let code, let reason):
                sendCloseFrame(code: code, reason: reason)
            case .closeChannel:
                guard let channel else { break }
                guard let written = closeFrameWritten else {
                    channel.close(promise: nil)
                    break
                }
                // After our close frame is out: closing with the write still pending fails it, and the server
                // saw 1006 instead of the 1010/1002 it was told (seen in a loaded CI run). A server that reads
                // nothing never completes that write, so it may hold the channel open for a second at most.
                let fallback = channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
                written.whenComplete { _ in
                    fallback.cancel()
                    channel.close(promise: nil)
                }
            case .closeChannelWhenPeerDoes(let limit):
                guard let channel else { break }
                let fallback = channel.eventLoop.scheduleTask(in: .nanoseconds(limit.nanosecondsClamped)) {
                    channel.close(promise: nil)
                }
                channel.closeFuture.whenComplete { _ in fallback.cancel() }
            case .reportOpened:
                delegate?.connectionDidOpen(self, subprotocol: subprotocol)
            case .reportFailedToOpen(let failure):
                delegate?.connection(self, didFailToOpen: failure)
            case .reportClosed(let info):
                delegate?.connection(self, didClose: info)
            }
        }
    }

    private func sendCloseFrame(code: UInt16, reason: String) {
        guard let channel else { return }
        var buffer = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        buffer.writeInteger(code)
        buffer.writeString(String(reason.utf8.prefix(123)) ?? "")
        pendingData.removeAll()
        closeFrameWritten = channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buffer))
    }

    /// EMFILE/ENFILE, also inside NIO's per-address connect errors.
    static func isDescriptorExhaustion(_ error: any Error) -> Bool {
        if let connectError = error as? NIOConnectionError {
            return connectError.connectionErrors.contains { isDescriptorExhaustion($0.error) }
        }
        if let ioError = error as? IOError { return DescriptorReserve.isExhaustion(ioError.errnoCode) }
        return false
    }

    static func describe(_ error: any Error) -> String {
        if let connectError = error as? NIOConnectionError {
            // One line per address tried, without NIO's debug formatting.
            let attempts = connectError.connectionErrors.map { "\($0.target): \(describe($0.error))" }
            if connectError.dnsAAAAError != nil && connectError.dnsAError != nil { return "DNS lookup of \(connectError.host) failed" }
            return attempts.isEmpty ? "no addresses for \(connectError.host)" : attempts.joined(separator: "; ")
        }
        if let ioError = error as? IOError { return String(cString: strerror(ioError.errnoCode)).lowercased() }
        if let timeout = error as? ChannelError, case .connectTimeout = timeout { return "timed out" }
        if let sslError = error as? NIOSSLError { return "\(sslError)" }
        return "\(error)"
    }
}

/// Sees the HTTP response when the server did not switch protocols, and TLS/transport errors before the
/// upgrade. Removed together with the HTTP codec once the upgrade succeeds.
final class HandshakeResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let connection: UpstreamConnection
    private var rejected: HTTPResponseHead?

    init(connection: UpstreamConnection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            rejected = head
        case .body:
            break
        case .end:
            if let head = rejected { connection.upgradeRejected(status: head.status, headers: head.headers) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let head = rejected { connection.upgradeRejected(status: head.status, headers: head.headers) }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            connection.tlsHandshakeCompleted()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.pipelineError(error)
    }
}

/// Delivers `channelInactive` one event-loop tick late.
///
/// A server may send its 101 response, WebSocket frames and FIN in one burst (Autobahn's `/getCaseCount` does:
/// a text message, a close frame, then it closes TCP). NIO removes the HTTP decoder asynchronously (an
/// `execute`d task) during the upgrade and only then forwards the bytes that followed the 101 to the WebSocket
/// decoder; but an EOF read in the same burst reaches the HTTP decoder first, and with `seenEOF` it drops
/// those "leftover" bytes, so the frames vanished and the close looked like a 1006 drop. Deferring the
/// inactive event lets the queued removal run first (NIO's own close bookkeeping is queued after ours).
final class DeferredInactiveHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func channelInactive(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBound.value.fireChannelInactive()
        }
    }
}

/// Frames in, to the connection (whose decoder and state machine decide what they mean).
final class WebSocketFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let connection: UpstreamConnection

    init(connection: UpstreamConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.frameReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.readBurstComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.pipelineError(error)
    }
}

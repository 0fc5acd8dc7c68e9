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
public struct ConnectionCloseInfo: Sendable, CustomStringConvertible {
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
/// A thin I/O shell: protocol decisions are made by `WebSocketMessageAssembler`, and supervision (keepalive,
/// reconnects) by whoever owns the connection. The same code serves the daemon, `probe`, and the Autobahn
/// conformance client. Confined to one event loop; not thread-safe by design.
// @unchecked Sendable: every `var` (phase, channel, deadline, closeInfo, failure, pendingData, delegate, ...) is confined to `loop`.
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

    enum Phase {
        case idle, connecting, handshaking, open, closing, closed
    }

    public let loop: any EventLoop
    public let request: HandshakeRequest
    public let options: Options
    private let tls: NIOSSLContext?
    private let serverName: String?
    /// Held strongly: it is the attempt's own small object; set to nil to silence a superseded attempt.
    public var delegate: (any UpstreamConnectionDelegate)?

    private(set) var phase: Phase = .idle
    private var channel: (any Channel)?
    private var deadline: Scheduled<Void>?
    private var closeInfo: ConnectionCloseInfo?
    private var failure: ConnectionFailure?
    /// Data frames waiting for the channel to become writable; control frames never wait here.
    private var pendingData: [WebSocketFrame] = []
    /// When the last frame of any kind arrived (for idle detection).
    public private(set) var lastFrameAt: NIODeadline = .now()
    public private(set) var subprotocol: String?
    /// The agreed permessage-deflate parameters; nil while uncompressed (or not yet open).
    public private(set) var compression: PerMessageDeflateParameters?
    /// The frame handler's inflater, kept here only to read its counters.
    private var inflater: MessageInflater?
    /// Bytes in and out of the inflater so far; nil on an uncompressed connection.
    public var compressionStats: CompressionStats? { inflater?.stats }

    public init(loop: any EventLoop, request: HandshakeRequest, tls: NIOSSLContext?, serverName: String?, options: Options) {
        self.loop = loop
        self.request = request
        self.tls = tls
        self.serverName = serverName
        self.options = options
    }

    // MARK: - Commands (call on `loop`)

    public func start() {
        loop.preconditionInEventLoop()
        guard phase == .idle else { return }
        phase = .connecting
        arm(options.connectTimeout) { $0.failOpen(.connect("connect timeout (\($0.options.connectTimeout)) to \($0.request.url.host):\($0.request.url.port)")) }
        let proxy = options.proxy
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(options.connectTimeout.nanosecondsClamped))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let proxy {
                        try channel.pipeline.syncOperations.addHandler(self.makeProxyHandler(proxy))
                    } else {
                        try self.configurePipeline(channel)
                    }
                }
            }
        let (host, port) = proxy.map { ($0.host, $0.port) } ?? (request.url.host, request.url.port)
        bootstrap.connect(host: host, port: port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard phase == .connecting else {
                    channel.close(promise: nil)
                    return
                }
                self.channel = channel
                channel.closeFuture.whenComplete { [self] _ in self.channelClosed() }
                if tls == nil && proxy == nil { sendUpgradeRequest() }
            case .failure(let error):
                let via = proxy.map { " via proxy \($0)" } ?? ""
                failOpen(.connect("connect to \(host):\(port)\(via) failed: \(Self.describe(error))"))
            }
        }
    }

    public func send(_ message: OutgoingMessage) {
        loop.preconditionInEventLoop()
        guard phase == .open, let channel else { return }
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
        guard phase == .open else { return }
        sendData(WebSocketFrame(fin: true, opcode: kind == .text ? .text : .binary, maskKey: .random(), data: payload))
    }

    /// Sends a data message whose payload the caller already compressed with the agreed permessage-deflate
    /// parameters (RSV1 set). Only the conformance echo client uses it: the daemon's own sends stay
    /// uncompressed.
    public func sendCompressed(kind: ReceivedMessage.Kind, payload: ByteBuffer) {
        loop.preconditionInEventLoop()
        guard phase == .open, compression != nil else { return }
        sendData(WebSocketFrame(fin: true, rsv1: true, opcode: kind == .text ? .text : .binary, maskKey: .random(), data: payload))
    }

    /// Pings bypass queued data so a long outgoing backlog cannot delay them past the pong deadline.
    public func sendPing(_ payload: [UInt8]) {
        loop.preconditionInEventLoop()
        guard phase == .open, let channel else { return }
        var buffer = channel.allocator.buffer(capacity: payload.count)
        buffer.writeBytes(payload)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: buffer), promise: nil)
    }

    /// Starts the closing handshake with `code`; TCP is closed when the server answers or after `closeTimeout`.
    public func close(code: UInt16, reason: String) {
        loop.preconditionInEventLoop()
        switch phase {
        case .idle:
            phase = .closed
            closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .local)
            finish()
        case .connecting, .handshaking:
            failOpen(.connect("cancelled: \(reason)"))
        case .open:
            closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .local)
            sendCloseFrame(code: code, reason: reason)
            phase = .closing
            arm(options.closeTimeout) { $0.channel?.close(promise: nil) }
        case .closing, .closed:
            break
        }
    }

    /// Drops the connection at once (dead peer): a close frame is attempted but not waited for.
    public func abort(code: UInt16, reason: String) {
        loop.preconditionInEventLoop()
        guard phase == .open || phase == .closing else {
            close(code: code, reason: reason)
            return
        }
        if closeInfo == nil { closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .local) }
        if phase == .open { sendCloseFrame(code: code, reason: reason) }
        phase = .closing
        channel?.close(promise: nil)
    }

    /// Back-pressure from the sinks: stop or resume reading from the socket.
    public func setReading(_ enabled: Bool) {
        loop.preconditionInEventLoop()
        guard let channel else { return }
        channel.setOption(ChannelOptions.autoRead, value: enabled).whenComplete { _ in }
        if enabled { channel.read() }
    }

    // MARK: - Pipeline

    private func makeProxyHandler(_ proxy: ProxyTarget) -> HTTPConnectProxyHandler {
        HTTPConnectProxyHandler(
            targetHost: request.url.host, targetPort: request.url.port, authorization: proxy.authorization,
            onEstablished: { [self] context in
                do {
                    try configurePipeline(context.channel)
                    if tls == nil { sendUpgradeRequest() }
                } catch {
                    failOpen(.connect("after proxy CONNECT: \(Self.describe(error))"))
                }
            },
            onFailed: { [self] message in failOpen(.connect(message)) }
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
            let decoder = try InboundMessageDecoder(maxMessageSize: options.maxMessageSize,
                                                    compression: (try? negotiated.get()) ?? nil)
            try channel.pipeline.syncOperations.addHandler(WebSocketFrameHandler(connection: self, decoder: decoder))
            self.upgraded(response, negotiated: negotiated, inflater: decoder.inflater)
        }
    }

    func tlsHandshakeCompleted() {
        if phase == .connecting { sendUpgradeRequest() }
    }

    private func sendUpgradeRequest() {
        guard phase == .connecting, let channel else { return }
        phase = .handshaking
        arm(options.handshakeTimeout) { $0.failOpen(.handshake("no upgrade response within \($0.options.handshakeTimeout)")) }
        channel.write(HTTPClientRequestPart.head(request.head()), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    private func upgraded(_ response: HTTPResponseHead, negotiated: Result<PerMessageDeflateParameters?, DeflateNegotiationError>,
                          inflater: MessageInflater?) {
        guard phase == .handshaking else { return }
        let chosen = response.headers.first(name: "Sec-WebSocket-Protocol")
        if let chosen, !request.subprotocols.contains(chosen) {
            failOpen(.handshake("server chose subprotocol \"\(chosen)\" that was not offered"))
            return
        }
        switch negotiated {
        case .success(let parameters):
            compression = parameters
            self.inflater = inflater
        case .failure(let error):
            // RFC 6455 §4.1 / RFC 7692 §7: _Fail the WebSocket Connection_; the close frame (1010 for a declined
            // required extension, 1002 for an invalid answer) tells the server why.
            sendCloseFrame(code: error.closeCode, reason: error.message)
            failOpen(.handshake(error.message))
            return
        }
        cancelDeadline()
        subprotocol = chosen
        phase = .open
        lastFrameAt = .now()
        delegate?.connectionDidOpen(self, subprotocol: chosen)
    }

    // MARK: - Events from the handlers

    func upgradeRejected(status: HTTPResponseStatus, headers: HTTPHeaders) {
        failOpen(.upgradeRejected(status: Int(status.code), reason: status.reasonPhrase,
                                  headers: headers.map { ($0.name, $0.value) }))
    }

    func pipelineError(_ error: any Error) {
        switch phase {
        case .connecting:
            failOpen(.connect("TLS: \(Self.describe(error))"))
        case .handshaking:
            if let upgradeError = error as? NIOHTTPClientUpgradeError, upgradeError == .upgraderDeniedUpgrade {
                failOpen(.handshake("invalid Sec-WebSocket-Accept in the server's 101 response"))
            } else if let upgradeError = error as? NIOHTTPClientUpgradeError, upgradeError == .responseProtocolNotFound {
                failOpen(.handshake("101 response without Upgrade: websocket"))
            } else {
                failOpen(.handshake(Self.describe(error)))
            }
        case .open:
            if let wsError = error as? NIOWebSocketError {
                switch wsError {
                case .invalidFrameLength:
                    protocolViolation(code: CloseCode.messageTooBig, reason: "frame exceeds max_message_size \(options.maxMessageSize)")
                default:
                    protocolViolation(code: CloseCode.protocolError, reason: "\(wsError)")
                }
            } else {
                closeInfo = closeInfo ?? ConnectionCloseInfo(code: CloseCode.abnormal, reason: Self.describe(error), initiator: .transport)
                channel?.close(promise: nil)
            }
        case .closing, .closed, .idle:
            channel?.close(promise: nil)
        }
    }

    private var burst: [InboundMessage] = []

    func frameReceived(_ frame: WebSocketFrame, decoder: inout InboundMessageDecoder) {
        lastFrameAt = .now()
        switch decoder.receive(frame) {
        case .none:
            break
        case .message(let kind, let payload):
            // Also while our own close frame is on its way: the server sent these before it saw it, and
            // "received" means delivered (a graceful shutdown must not lose them).
            guard phase == .open || (phase == .closing && closeInfo?.initiator == .local) else { return }
            burst.append(InboundMessage(kind: kind, payload: payload, receivedAt: .now()))
        case .replyPong(let payload):
            guard phase == .open, let channel else { return }
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: payload), promise: nil)
        case .pong(let payload):
            delegate?.connection(self, didReceivePong: payload)
        case .peerClosed(let code, let reason):
            flushBurst()
            peerClosed(code: code, reason: reason)
        case .fail(let code, let reason):
            flushBurst()
            protocolViolation(code: code, reason: reason)
        }
    }

    func readBurstComplete() {
        flushBurst()
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

    private func peerClosed(code: UInt16?, reason: String) {
        switch phase {
        case .open:
            // Answer with the same code (RFC 6455 §5.5.1), then wait for the server to close TCP.
            closeInfo = ConnectionCloseInfo(code: code ?? CloseCode.noStatus, reason: reason, initiator: .peer)
            sendCloseFrame(code: code ?? CloseCode.normal, reason: "")
            phase = .closing
            arm(options.closeTimeout) { $0.channel?.close(promise: nil) }
        case .closing:
            // The answer to our own close frame: the handshake is complete.
            channel?.close(promise: nil)
        default:
            break
        }
    }

    private func protocolViolation(code: UInt16, reason: String) {
        guard phase == .open || phase == .closing else { return }
        if phase == .open {
            closeInfo = ConnectionCloseInfo(code: code, reason: reason, initiator: .protocolViolation)
            sendCloseFrame(code: code, reason: reason)
            phase = .closing
        }
        // After a protocol error the server's frames can no longer be trusted; do not wait for its close.
        channel?.close(promise: nil)
    }

    private func sendCloseFrame(code: UInt16, reason: String) {
        guard let channel else { return }
        var buffer = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        buffer.writeInteger(code)
        buffer.writeString(String(reason.utf8.prefix(123)) ?? "")
        pendingData.removeAll()
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buffer), promise: nil)
    }

    private func channelClosed() {
        flushBurst()
        cancelDeadline()
        switch phase {
        case .connecting:
            failOpen(.connect("connection closed during TLS handshake"))
        case .handshaking:
            failOpen(.handshake("connection closed before the upgrade response"))
        case .open, .closing:
            phase = .closed
            finish()
        case .idle, .closed:
            break
        }
    }

    private func failOpen(_ failure: ConnectionFailure) {
        guard phase == .connecting || phase == .handshaking else { return }
        phase = .closed
        self.failure = failure
        cancelDeadline()
        channel?.close(promise: nil)
        delegate?.connection(self, didFailToOpen: failure)
    }

    private func finish() {
        let info = closeInfo ?? ConnectionCloseInfo(code: CloseCode.abnormal, reason: "connection dropped without a close frame", initiator: .transport)
        phase = .closed
        delegate?.connection(self, didClose: info)
    }

    private func arm(_ timeout: Duration, _ action: @escaping (UpstreamConnection) -> Void) {
        cancelDeadline()
        deadline = loop.assumeIsolated().scheduleTask(in: .nanoseconds(timeout.nanosecondsClamped)) { [self] in
            action(self)
        }
    }

    private func cancelDeadline() {
        deadline?.cancel()
        deadline = nil
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

/// Frames in, protocol decisions by the decoder (inflater and assembler), results to the connection.
final class WebSocketFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let connection: UpstreamConnection
    private var decoder: InboundMessageDecoder

    init(connection: UpstreamConnection, decoder: InboundMessageDecoder) {
        self.connection = connection
        self.decoder = decoder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.frameReceived(unwrapInboundIn(data), decoder: &decoder)
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

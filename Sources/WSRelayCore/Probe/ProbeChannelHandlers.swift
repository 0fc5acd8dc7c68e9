import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS
import NIOWebSocket

/// What the probe's channel handlers report to the stage runner, in the order it happened.
enum ProbeEvent: Sendable {
    case proxyStatusLine(String)
    case proxyEstablished
    case proxyFailed(String)
    case tlsCompleted(version: TLSVersion?, alpn: String?, certificate: CertificateSummary?)
    case tlsFailed(error: String, hostnameFailure: Bool, certificate: CertificateSummary?)
    case responseHead(HTTPResponseHead)
    case upgraded(HTTPResponseHead)
    /// `head`: the first 64 KiB of the payload.
    case message(kind: ReceivedMessage.Kind, size: Int, head: [UInt8])
    case pong([UInt8])
    case peerClosed(code: UInt16?, reason: String)
    case error(String)
    case closed
}

typealias ProbeEvents = ProbeInbox<ProbeEvent>

/// Copies the first line of the proxy's answer to CONNECT (its status line) before `HTTPConnectProxyHandler`
/// consumes it, then steps aside.
final class ProxyStatusLineRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let events: ProbeEvents
    private var seen: [UInt8] = []
    private var done = false

    init(events: ProbeEvents) { self.events = events }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done {
            seen.append(contentsOf: unwrapInboundIn(data).readableBytesView.prefix(1024))
            if let end = seen.firstIndex(of: UInt8(ascii: "\r")) ?? seen.firstIndex(of: UInt8(ascii: "\n")) {
                done = true
                events.post(.proxyStatusLine(String(decoding: seen[..<end], as: UTF8.self)))
            } else if seen.count >= 1024 {
                done = true
            }
        }
        context.fireChannelRead(data)
    }
}

/// Watches the TLS handshake: its completion with the negotiated version and the peer certificate, or its
/// failure together with the certificate the server presented (still readable while the error is caught).
final class ProbeTLSWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let events: ProbeEvents
    private var reported = false

    init(events: ProbeEvents) { self.events = events }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !reported, let tls = event as? TLSUserEvent, case .handshakeCompleted(let alpn) = tls {
            reported = true
            let ops = context.pipeline.syncOperations
            let certificate = (try? ops.nioSSL_peerCertificate())?.map(CertificateSummary.init)
            events.post(.tlsCompleted(version: try? ops.nioSSL_tlsVersion(), alpn: alpn, certificate: certificate))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !reported {
            reported = true
            let certificate = (try? context.pipeline.syncOperations.nioSSL_peerCertificate())?.map(CertificateSummary.init)
            let hostname = (error as? NIOSSLExtraError) == .failedToValidateHostname
            events.post(.tlsFailed(error: "\(error)", hostnameFailure: hostname, certificate: certificate))
        }
        context.fireErrorCaught(error)
    }
}

/// Reports the head of the upgrade response (101 or not) before the upgrade handler acts on it.
final class ProbeResponseRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    private let events: ProbeEvents

    init(events: ProbeEvents) { self.events = events }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { events.post(.responseHead(head)) }
        context.fireChannelRead(data)
    }
}

/// The end of the pipeline until the upgrade: reports errors (an invalid Sec-WebSocket-Accept, a broken
/// response) and swallows the body of a refused upgrade.
final class ProbeErrorCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let events: ProbeEvents

    init(events: ProbeEvents) { self.events = events }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        events.post(.error(UpstreamConnection.describe(error)))
    }
}

/// After the upgrade: frames through the daemon's own protocol rules (`InboundMessageDecoder`: inflater and
/// assembler), pings answered, messages and pongs reported.
final class ProbeFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let events: ProbeEvents
    private var decoder: InboundMessageDecoder

    init(events: ProbeEvents, decoder: InboundMessageDecoder) {
        self.events = events
        self.decoder = decoder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch decoder.receive(unwrapInboundIn(data)) {
        case .none:
            break
        case .message(let kind, let payload):
            events.post(.message(kind: kind, size: payload.readableBytes, head: Array(payload.readableBytesView.prefix(65536))))
        case .replyPong(let payload):
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: payload)), promise: nil)
        case .pong(let payload):
            events.post(.pong(Array(payload.readableBytesView)))
        case .peerClosed(let code, let reason):
            events.post(.peerClosed(code: code, reason: reason))
        case .fail(let code, let reason):
            events.post(.error("protocol error from the server (\(code)): \(reason)"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        events.post(.error(UpstreamConnection.describe(error)))
        context.close(promise: nil)
    }
}

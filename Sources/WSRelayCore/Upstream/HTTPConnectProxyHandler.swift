import NIOCore

/// Opens a tunnel through an HTTP proxy (`CONNECT host:port`) before anything else is spoken on the
/// connection; once the proxy answers 200 it removes itself and the TLS/HTTP pipeline is added behind it.
/// A proxy that refuses (407, 403, 502...) is reported with its status line, which is usually the answer to
/// "why does it work with curl but not here".
final class HTTPConnectProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let target: String
    private let authorization: String?
    private let onEstablished: (ChannelHandlerContext) -> Void
    private let onFailed: (String) -> Void
    private var buffer = ByteBuffer()
    private var done = false

    init(targetHost: String, targetPort: Int, authorization: String?,
         onEstablished: @escaping (ChannelHandlerContext) -> Void, onFailed: @escaping (String) -> Void) {
        self.target = targetHost.contains(":") ? "[\(targetHost)]:\(targetPort)" : "\(targetHost):\(targetPort)"
        self.authorization = authorization
        self.onEstablished = onEstablished
        self.onFailed = onFailed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendConnect(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendConnect(context: context)
        context.fireChannelActive()
    }

    private var sent = false

    private func sendConnect(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        var request = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let authorization { request += "Proxy-Authorization: \(authorization)\r\n" }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        let view = buffer.readableBytesView
        guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else {
            if buffer.readableBytes > 16 * 1024 { fail(context, "proxy sent an oversized response to CONNECT") }
            return
        }
        let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1] == "200" else {
            fail(context, "proxy refused CONNECT \(target): \(statusLine.isEmpty ? "no status line" : statusLine)")
            return
        }
        done = true
        buffer.moveReaderIndex(to: end.upperBound)
        let leftover = buffer
        onEstablished(context)
        if leftover.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(leftover)) }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ message: String) {
        done = true
        onFailed(message)
        context.close(promise: nil)
    }
}

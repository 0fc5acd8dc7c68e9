import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The client side of the HTTP/1.1 → WebSocket upgrade, set up the one way both the daemon's connections and
/// `wsrelay probe` use, so what probe diagnoses is exactly what the daemon would do.
///
/// Order (bottom to top): `DeferredInactiveHandler` (frames that arrive together with the 101 and an EOF are
/// not lost), request encoder, response decoder, `beforeUpgrade` handlers, the upgrade handler, `afterUpgrade`
/// handlers. Every HTTP-stage handler is removed when the upgrade succeeds; `onUpgrade` then adds the frame
/// handler. Automatic error handling is off: the caller's handlers decide what a bad frame means.
enum WebSocketUpgradePipeline {
    static func add(
        to channel: any Channel, requestKey: String, maxMessageSize: Int,
        beforeUpgrade: [any RemovableChannelHandler] = [], afterUpgrade: [any RemovableChannelHandler] = [],
        onUpgrade: @escaping @Sendable (any Channel, HTTPResponseHead) throws -> Void
    ) throws {
        let ops = channel.pipeline.syncOperations
        try ops.addHandler(DeferredInactiveHandler())
        let requestEncoder = HTTPRequestEncoder()
        let responseDecoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
        let upgrader = NIOWebSocketClientUpgrader(
            requestKey: requestKey, maxFrameSize: min(maxMessageSize, Int(UInt32.max)), automaticErrorHandling: false
        ) { channel, response in
            channel.eventLoop.makeCompletedFuture { try onUpgrade(channel, response) }
        }
        let upgradeHandler = NIOHTTPClientUpgradeHandler(
            upgraders: [upgrader],
            httpHandlers: [requestEncoder, responseDecoder] + beforeUpgrade + afterUpgrade,
            upgradeCompletionHandler: { _ in }
        )
        try ops.addHandler(requestEncoder)
        try ops.addHandler(responseDecoder)
        for handler in beforeUpgrade { try ops.addHandler(handler) }
        try ops.addHandler(upgradeHandler)
        for handler in afterUpgrade { try ops.addHandler(handler) }
    }
}

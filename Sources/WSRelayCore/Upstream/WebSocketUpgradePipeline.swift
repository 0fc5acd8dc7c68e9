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
        for handler in handlers(requestKey: requestKey, maxMessageSize: maxMessageSize, beforeUpgrade: beforeUpgrade,
                                afterUpgrade: afterUpgrade, onUpgrade: onUpgrade) {
            try ops.addHandler(handler)
        }
    }

    /// The handlers `add` installs, bottom to top.
    private static func handlers(
        requestKey: String, maxMessageSize: Int, beforeUpgrade: [any RemovableChannelHandler] = [],
        afterUpgrade: [any RemovableChannelHandler] = [],
        onUpgrade: @escaping @Sendable (any Channel, HTTPResponseHead) throws -> Void
    ) -> [any ChannelHandler] {
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
        return [DeferredInactiveHandler(), requestEncoder, responseDecoder] + beforeUpgrade + [upgradeHandler] + afterUpgrade
    }

    /// Instantiates, on the calling thread, the type metadata of every generic handler a connection builds:
    /// the launcher calls it before any event loop runs.
    ///
    /// Why: Swift 6.3's runtime can crash (a null dereference in `swift_checkMetadataState`, reached from
    /// `swift_conformsToProtocol` while checking a generic requirement) when two threads instantiate the same
    /// generic types for the first time at once. Here that is two event loops building their first upstream
    /// connections: 6 of 11,100 starts of 4–8 upstreams crashed so (`scripts/stress-start`, with and without
    /// `MallocTuning`), every one at `ByteToMessageHandler<HTTPResponseDecoder>` above; with this call 0 of
    /// 9,600. Built once here, the loops find that metadata complete. The frame handlers are the ones
    /// `NIOWebSocketClientUpgrader` adds at the 101.
    static func instantiateMetadata() {
        _ = handlers(requestKey: NIOWebSocketClientUpgrader.randomRequestKey(), maxMessageSize: 1 << 20,
                     onUpgrade: { _, _ in })
        _ = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20))
        _ = WebSocketFrameEncoder()
    }
}

import Glibc
import Logging
import NIOCore

/// Sits on every listening channel (unix sinks, the control socket, the metrics endpoint): names each failed
/// `accept` in one log line and, when the process is out of descriptors (EMFILE/ENFILE) or kernel memory,
/// stops accepting for a second. The waiting peers stay queued in the kernel and are accepted once
/// descriptors are free; the daemon carries on.
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the channel's next `read()`, but a failed accept leaves
/// NIO's server channel with a read pending and still registered for readability, and a listener with a
/// peer waiting stays readable — so the loop retried at once, forever: its whole core, and a log line every
/// 30 µs, for as long as descriptors were short (seen in the descriptor-exhaustion test). Turning `autoRead`
/// off is what takes the listener out of the event loop's interest set (`pauseRead0`); turning it back on
/// a second later registers it again and reads, which accepts or fails again — at most one line a second.
final class AcceptFailureBackoff: ChannelInboundHandler {
    typealias InboundIn = any Channel

    static let pause: TimeAmount = .seconds(1)

    private let label: String
    private let logger: Logger
    private var resume: Scheduled<Void>?

    init(label: String, logger: Logger) {
        self.label = label
        self.logger = logger
    }

    /// The `serverChannelInitializer` of every listener.
    static func install(on channel: any Channel, label: String, logger: Logger) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(AcceptFailureBackoff(label: label, logger: logger))
        }
    }

    /// Failures that end by themselves once something else closes or frees memory.
    static func isTransient(_ errno: CInt) -> Bool {
        [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(errno)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        defer { context.fireErrorCaught(error) }
        guard let error = error as? IOError, Self.isTransient(error.errnoCode) else {
            logger.error("\(label): cannot accept a connection: \(error)")
            return
        }
        logger.error("\(label): cannot accept a connection: \(SystemError.describe(error.errnoCode)); the waiting peer stays queued and is accepted once descriptors are free (next try in 1 s)")
        guard resume == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(ChannelOptions.autoRead, value: false)
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            resume = nil
            try? options.setOption(ChannelOptions.autoRead, value: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}

import Glibc
import Logging
import NIOCore

/// Sits on every listening channel (unix sinks, the control socket, the metrics endpoint): names each failed
/// `accept` in one log line and, when the process is out of descriptors (EMFILE/ENFILE) or kernel memory,
/// stops accepting for a second; while descriptors are scarce (`DescriptorReserve`) the subscriber and
/// metrics listeners accept nothing at all (the control socket still does: one descriptor for an operator's
/// `wsrelay status` is worth it exactly then). The waiting peers stay queued in the kernel and are accepted once
/// descriptors are free; the daemon carries on.
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the channel's next `read()`, but a failed accept leaves
/// NIO's server channel with a read pending and still registered for readability, and a listener with a
/// peer waiting stays readable — so the loop retried at once, forever: its whole core, and a log line every
/// 30 µs, for as long as descriptors were short (seen in the descriptor-exhaustion test). Turning `autoRead`
/// off is what takes the listener out of the event loop's interest set (`pauseRead0`); turning it back on
/// a second later registers it again and reads, which accepts or fails again — at most one line a second.
/// A `read()` that arrives while descriptors are scarce is held the same way.
final class AcceptFailureBackoff: ChannelDuplexHandler {
    typealias InboundIn = any Channel
    typealias OutboundIn = any Channel

    static let pause: TimeAmount = .seconds(1)

    private let label: String
    private let logger: Logger
    private let reserve: DescriptorReserve
    private let holdWhileScarce: Bool
    private var retry: Scheduled<Void>?
    private var readHeld = false
    private var autoReadOff = false

    init(label: String, logger: Logger, holdWhileScarce: Bool = true, reserve: DescriptorReserve = .process) {
        self.label = label
        self.logger = logger
        self.holdWhileScarce = holdWhileScarce
        self.reserve = reserve
    }

    /// The `serverChannelInitializer` of every listener.
    static func install(on channel: any Channel, label: String, logger: Logger, holdWhileScarce: Bool = true) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                AcceptFailureBackoff(label: label, logger: logger, holdWhileScarce: holdWhileScarce))
        }
    }

    private var holding: Bool { holdWhileScarce && reserve.isScarce }

    /// Failures that end by themselves once something else closes or frees memory.
    static func isTransient(_ errno: CInt) -> Bool {
        [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(errno)
    }

    func read(context: ChannelHandlerContext) {
        guard holding else { return context.read() }
        readHeld = true
        armRetry(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        defer { context.fireErrorCaught(error) }
        guard let error = error as? IOError, Self.isTransient(error.errnoCode) else {
            logger.error("\(label): cannot accept a connection: \(error)")
            return
        }
        logger.error("\(label): cannot accept a connection: \(SystemError.describe(error.errnoCode)); the waiting peer stays queued and is accepted once descriptors are free (next try in 1 s)")
        if DescriptorReserve.isExhaustion(error.errnoCode) { reserve.exhausted() }
        if !autoReadOff, let options = context.channel.syncOptions {
            try? options.setOption(ChannelOptions.autoRead, value: false)
            autoReadOff = true
        }
        armRetry(context: context)
    }

    private func armRetry(context: ChannelHandlerContext) {
        guard retry == nil else { return }
        retry = context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            retry = nil
            if holding { return armRetry(context: context) }
            if readHeld {
                readHeld = false
                context.read()
            }
            if autoReadOff {
                autoReadOff = false
                try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        retry?.cancel()
        retry = nil
        context.fireChannelInactive()
    }
}

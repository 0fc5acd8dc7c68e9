import NIOCore

/// Decides when an upstream's next socket read waits a moment: while a flood arrives in small pieces.
///
/// A source that writes each message with its own `send` (most asyncio servers, picows among them) hands a
/// reader that keeps up one message per read. Each read then costs the relay a wake-up, an `epoll_wait`, a
/// `read`, an ACK and a pass through the pipeline and the router — and costs the source a wake-up of the
/// reader per `send`: with picows at 4 KiB both together were the limit (bench/RESULTS.md, issue 15). When
/// reads are small (`smallBytes`) and come close together (`interval`), the next read waits `delay`; the
/// socket gathers what arrives meanwhile, so the relay reads it in one go and the source is not woken for it.
///
/// A stream that is not a flood never waits: a read that brings `smallBytes` or more, or that comes more than
/// `interval` after the previous one, resets the run. The cost is at most `delay` of added latency per read
/// while a flood of small pieces lasts.
struct SmallReadPacing: Sendable {
    struct Settings: Sendable, Equatable {
        /// Reads that bring less than this are small.
        var smallBytes = 16 * 1024
        /// Reads that complete within this of the previous one are close together.
        var interval: TimeAmount = .microseconds(50)
        /// How long the next read waits.
        var delay: TimeAmount = .microseconds(100)
        /// Small, close reads in a row before the first wait: one pair is chance, a run is a flood.
        var runBeforePacing = 4
    }

    let settings: Settings
    private var bytesThisRead = 0
    private var lastReadCompleted: NIODeadline?
    private var run = 0

    init(settings: Settings = Settings()) {
        self.settings = settings
    }

    mutating func received(bytes: Int) {
        bytesThisRead &+= bytes
    }

    /// The socket was read (NIO's read complete): returns how long the next read should wait, if at all.
    mutating func readCompleted(at now: NIODeadline) -> TimeAmount? {
        defer {
            bytesThisRead = 0
            lastReadCompleted = now
        }
        let close = lastReadCompleted.map { now - $0 <= settings.interval } ?? false
        guard bytesThisRead < settings.smallBytes, close else {
            run = 0
            return nil
        }
        run += 1
        return run >= settings.runBeforePacing ? settings.delay : nil
    }
}

/// The I/O side of `SmallReadPacing`: first in an upstream's pipeline, it counts the bytes each read brings and
/// holds back the next `read` (which NIO issues after every read while `autoRead` is on) when pacing says so.
/// Back-pressure (`autoRead` off) is untouched: while it holds, no `read` comes to hold back.
final class SmallReadPacer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Never

    private var pacing: SmallReadPacing
    private var nextReadDelay: TimeAmount?
    private var held: Scheduled<Void>?

    init(settings: SmallReadPacing.Settings = .init()) {
        pacing = SmallReadPacing(settings: settings)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pacing.received(bytes: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        nextReadDelay = pacing.readCompleted(at: context.eventLoop.now)
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if held != nil { return }
        guard let delay = nextReadDelay else { return context.read() }
        nextReadDelay = nil
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        held = context.eventLoop.scheduleTask(in: delay) {
            bound.value.handler.held = nil
            bound.value.context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        held?.cancel()
        held = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        held?.cancel()
        held = nil
    }
}

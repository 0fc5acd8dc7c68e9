import NIOCore
import NIOEmbedded
import Testing
@testable import WSRelayCore

@Suite("small-read pacing")
struct SmallReadPacingTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// Counts the `read` calls that reach it on their way to the socket.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Never
        var reads = 0

        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// Reads of `bytes` each, `gap` apart; returns what pacing said after each.
    static func reads(_ pacing: inout SmallReadPacing, count: Int, bytes: Int, gap: TimeAmount, from: NIODeadline = start) -> [TimeAmount?] {
        (0..<count).map { i in
            pacing.received(bytes: bytes)
            return pacing.readCompleted(at: from + gap * Int64(i))
        }
    }

    @Test("a run of small reads close together makes the next read wait, after four in a row")
    func floodOfSmallReads() {
        var pacing = SmallReadPacing()
        let said = Self.reads(&pacing, count: 6, bytes: 4096, gap: .microseconds(5))
        // The first has no predecessor; the 2nd to 5th make the run of four; from then on the next read waits.
        #expect(said == [nil, nil, nil, nil, .microseconds(100), .microseconds(100)])
    }

    @Test("a large read or a pause ends the run; a trickle never waits")
    func notAFlood() {
        var pacing = SmallReadPacing()
        _ = Self.reads(&pacing, count: 6, bytes: 100, gap: .microseconds(5))
        pacing.received(bytes: 64 * 1024)
        #expect(pacing.readCompleted(at: Self.start + .microseconds(35)) == nil)
        #expect(Self.reads(&pacing, count: 3, bytes: 100, gap: .microseconds(5), from: Self.start + .microseconds(40)) == [nil, nil, nil])

        var trickle = SmallReadPacing()
        #expect(Self.reads(&trickle, count: 20, bytes: 100, gap: .microseconds(100)).allSatisfy { $0 == nil })
    }

    @Test("the handler holds back the read NIO issues after a paced read complete, and lets it through after the delay")
    func handlerHoldsTheNextRead() throws {
        let counter = ReadCounter()
        let settings = SmallReadPacing.Settings(smallBytes: 1024, interval: .microseconds(50), delay: .milliseconds(1), runBeforePacing: 1)
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(SmallReadPacer(settings: settings))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        counter.reads = 0

        func readBurst() throws {
            try channel.writeInbound(ByteBuffer(string: "small"))  // channelRead, then channelReadComplete
            channel.read()
        }
        try readBurst()
        #expect(counter.reads == 1, "the first read has nothing to pace against")
        loop.advanceTime(by: .microseconds(10))
        try readBurst()
        #expect(counter.reads == 1, "held back")
        channel.read()
        #expect(counter.reads == 1, "a second read while one is held is the same read")
        loop.advanceTime(by: .microseconds(999))
        #expect(counter.reads == 1)
        loop.advanceTime(by: .microseconds(1))
        #expect(counter.reads == 2, "let through after 1 ms")

        // A large read is not paced.
        loop.advanceTime(by: .microseconds(10))
        try channel.writeInbound(ByteBuffer(repeating: 0x61, count: 2048))
        channel.read()
        #expect(counter.reads == 3)
        _ = try channel.finish()
    }

    @Test("a held read is dropped when the channel closes")
    func closeCancelsTheHeldRead() throws {
        let counter = ReadCounter()
        let settings = SmallReadPacing.Settings(smallBytes: 1024, interval: .microseconds(50), delay: .milliseconds(1), runBeforePacing: 1)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(SmallReadPacer(settings: settings))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        counter.reads = 0
        for _ in 0..<2 {
            try channel.writeInbound(ByteBuffer(string: "small"))  // channelRead, then channelReadComplete
            channel.read()
            channel.embeddedEventLoop.advanceTime(by: .microseconds(10))
        }
        #expect(counter.reads == 1)
        _ = try channel.finish()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(5))
        #expect(counter.reads == 1)
    }
}

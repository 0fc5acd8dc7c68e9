import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import WSRelayCore

/// Throughput of the file sink; only with `WSRELAY_SINK_BENCH=1` (meaningful in a release build):
/// `swift test -c release -Xswiftc -enable-testing --filter SinkBenchmark`.
@Suite("Sink throughput", .enabled(if: ProcessInfo.processInfo.environment["WSRELAY_SINK_BENCH"] == "1"), .serialized)
struct SinkBenchmarkTests {
    static func run(format: SinkFormat, messages: Int = 2_000_000, batch: Int = 500, payloadSize: Int = 100, subscribers: Int = 0) async throws {
        let dir = try TemporaryDirectory("sink-bench")
        let path = dir.file("out")
        let socket = dir.file("s.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var settings = [SinkTest.fileSettings(path, format: format)]
        if subscribers > 0 { settings.append(SinkTest.unixSettings(socket, format: format) { $0.queue = 512 * 1024 * 1024 }) }
        let sinks = try await SinkTest.open(settings, group: group)
        let payload = ByteBuffer(string: String(repeating: "x", count: payloadSize - 10) + "{\"p\":123}")
        let now = WallClockTime.now()
        let batches: [[RelayEvent]] = (0..<(messages / batch)).map { b in
            (0..<batch).map { i in
                .message(ReceivedMessage(upstream: "market", epoch: 1, seq: UInt64(b * batch + i + 1), receivedAt: now, kind: .text, payload: payload))
            }
        }
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let start = ContinuousClock.now
        let (deliverTime, received) = try await SinkTest.running(sinks) { () -> (Duration, Int) in
            var subs: [SinkTestSubscriber] = []
            for _ in 0..<subscribers { subs.append(try await SinkTestSubscriber.connect(socket, group: clients)) }
            if subscribers > 0 { await SinkTest.waitUntil { sinks.snapshot()[1].subscribers.count == subscribers } }
            let t0 = ContinuousClock.now
            let loop = group.next()
            for chunk in stride(from: 0, to: batches.count, by: 100) {
                try await loop.submit {
                    for b in chunk..<min(chunk + 100, batches.count) { sinks.router.deliver(batches[b]) }
                }.get()
            }
            let t1 = ContinuousClock.now
            if subscribers > 0 { await SinkTest.waitUntil(timeout: .seconds(120)) { subs.allSatisfy { $0.messages == messages } } }
            return (t1 - t0, subs.map(\.messages).min() ?? 0)
        }
        let total = ContinuousClock.now - start
        let seconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18
        let size = SinkTest.fileSize(path)
        print("sink bench \(format) payload=\(payloadSize)B subscribers=\(subscribers): \(messages) messages, \(size) bytes in \(total) (deliver \(deliverTime)) = \(Int(Double(messages) / seconds)) msg/s, \(Int(Double(size) / seconds / 1e6)) MB/s")
        #expect(SinkTest.readLines(path).count == messages)
        if subscribers > 0 { #expect(received == messages) }
        try await clients.shutdownGracefully()
        try await group.shutdownGracefully()
    }

    @Test func rawFile() async throws { try await Self.run(format: .raw) }
    @Test func envelopeFile() async throws { try await Self.run(format: .envelope) }
    @Test func envelopeFileAndTenSubscribers() async throws { try await Self.run(format: .envelope, messages: 500_000, subscribers: 10) }
}

import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite("Journal sink (sd_journal_sendv replaced by a recorder)", .mayBlock)
struct SinkJournalTests {
    /// Decodes the iovecs handed to sd_journal_sendv into `NAME=value` strings.
    static func fields(_ vectors: UnsafeMutablePointer<iovec>, _ count: Int32) -> [String] {
        (0..<Int(count)).map { i in
            let v = vectors[i]
            return String(decoding: UnsafeRawBufferPointer(start: v.iov_base, count: v.iov_len), as: UTF8.self)
        }
    }

    @Test func oneEntryPerMessageWithStructuredFields() async throws {
        let sent = NIOLockedValueBox<[[String]]>([])
        var settings = SinkSettings(kind: .journal)
        settings.upstreams = ["market"]
        settings.events = true
        let directory = UpstreamDirectory(names: ["market", "news"])
        let sink = JournalSink(settings: settings, directory: directory, logger: SinkTest.logger) { vectors, count in
            sent.withLockedValue { $0.append(SinkJournalTests.fields(vectors, count)) }
            return 0
        }
        let router = MessageRouter(directory: directory, lineSinks: [], eventSinks: [sink])
        let runner = SinkServiceRunner(services: [sink])
        let t = WallClockTime(microsecondsSinceEpoch: 1_795_255_200_000_001)
        router.deliver([
            .connected(upstream: "market", epoch: 3, at: t),
            .message(ReceivedMessage(upstream: "market", epoch: 3, seq: 1042, receivedAt: t, kind: .text, payload: ByteBuffer(string: "{\"p\":1}"))),
            .message(ReceivedMessage(upstream: "market", epoch: 3, seq: 1043, receivedAt: t, kind: .binary, payload: ByteBuffer(bytes: [UInt8](repeating: 1, count: 1234)))),
            .message(ReceivedMessage(upstream: "news", epoch: 1, seq: 1, receivedAt: t, kind: .text, payload: ByteBuffer(string: "not for this sink"))),
        ])
        await runner.stop()
        let entries = sent.withLockedValue { $0 }
        try #require(entries.count == 3)
        #expect(entries[0].contains("WSRELAY_EVENT=connected"))
        #expect(entries[1] == [
            "MESSAGE={\"p\":1}", "PRIORITY=6", "SYSLOG_IDENTIFIER=wsrelay", "WSRELAY_UPSTREAM=market", "WSRELAY_EPOCH=3",
            "WSRELAY_SEQ=1042", "WSRELAY_TYPE=text", "WSRELAY_TS=2026-11-21T10:00:00.000001Z",
        ])
        #expect(entries[2].first == "MESSAGE=binary message, 1234 bytes")
        #expect(entries[2].contains("WSRELAY_SEQ=1043"))
        #expect(sink.status.bytesWritten > 0 && sink.status.dropped == 0)
    }

    @Test func aFailingJournalIsRetriedAndLogsNoFlood() async throws {
        let attempts = NIOLockedValueBox(0)
        let sink = JournalSink(settings: SinkSettings(kind: .journal), directory: UpstreamDirectory(names: ["market"]),
                               logger: SinkTest.logger) { _, _ in
            attempts.withLockedValue { $0 += 1; return $0 <= 2 ? -ECONNREFUSED : 0 }
        }
        let router = MessageRouter(directory: UpstreamDirectory(names: ["market"]), lineSinks: [], eventSinks: [sink])
        let runner = SinkServiceRunner(services: [sink])
        router.deliver(SinkTest.batch(first: 1, count: 3))
        #expect(await waitUntil { sink.status.bufferedBytes == 0 && !sink.status.failing })
        await runner.stop()
        #expect(attempts.withLockedValue { $0 } == 5)
        #expect(sink.status.writeErrors == 2)
    }
}

import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import WSRelayTestSupport
@testable import WSRelayCore

/// Helpers for the in-process sink tests: real files, real sockets, a real `SinkSet` driven through its router.
enum SinkTest {
    static let logger: Logger = {
        var logger = Logger(label: "sink-test")
        logger.logLevel = ProcessInfo.processInfo.environment["SINK_TEST_LOG"] != nil ? .debug : .critical
        return logger
    }()

    static func fileSettings(_ path: String, format: SinkFormat = .envelope, upstreams: [String] = [], events: Bool = false,
                             configure: (inout FileSinkSettings) -> Void = { _ in }) -> SinkSettings {
        var file = FileSinkSettings(path: path)
        file.fsync = .never
        configure(&file)
        var settings = SinkSettings(kind: .file(file))
        settings.format = format
        settings.upstreams = upstreams
        settings.events = events
        return settings
    }

    static func unixSettings(_ path: String?, format: SinkFormat = .envelope, upstreams: [String] = [], events: Bool = false,
                             configure: (inout UnixSinkSettings) -> Void = { _ in }) -> SinkSettings {
        var unix = UnixSinkSettings(path: path)
        configure(&unix)
        var settings = SinkSettings(kind: .unix(unix))
        settings.format = format
        settings.upstreams = upstreams
        settings.events = events
        return settings
    }

    static func open(_ settings: [SinkSettings], upstreams: [String] = ["market"], group: any EventLoopGroup,
                     inherited: [SocketActivation.InheritedSocket] = []) async throws -> SinkSet {
        try await SinkSet.open(settings, upstreamNames: upstreams, group: group, forcedExit: ForcedExit(),
                               inheritedSockets: inherited, logger: logger)
    }

    /// Runs the sink services while `body` runs, then shuts them down gracefully and waits for them.
    static func running<T: Sendable>(_ sinks: SinkSet, _ body: @Sendable () async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: [sinks], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }

    /// `count` text messages of `upstream`, seq `first...`, payload `{"n":<seq>,"pad":"xxxx"}`.
    static func batch(_ upstream: String = "market", first: UInt64, count: Int, epoch: UInt64 = 1, pad: Int = 40) -> [RelayEvent] {
        let padding = String(repeating: "x", count: pad)
        let now = WallClockTime.now()
        return (0..<count).map { i in
            let seq = first + UInt64(i)
            return .message(ReceivedMessage(upstream: upstream, epoch: epoch, seq: seq, receivedAt: now, kind: .text,
                                            payload: ByteBuffer(string: "{\"n\":\(seq),\"pad\":\"\(padding)\"}")))
        }
    }

    static func readLines(_ path: String) -> [Substring] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The `seq` of an envelope line (nil for anything else).
    static func seq(of line: Substring) -> UInt64? {
        guard let r = line.range(of: "\"seq\":") else { return nil }
        return UInt64(line[r.upperBound...].prefix { $0.isNumber })
    }

    static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    static func waitForFileBytes(_ path: String, atLeast bytes: Int, timeout: Duration = .seconds(20)) async -> Bool {
        await waitUntil(timeout: timeout) { fileSize(path) >= bytes }
    }
}

/// A test subscriber on a Unix socket sink: NIO client that splits what arrives into lines, checks the
/// `seq` order of envelope lines, and keeps other lines (replies, errors, gaps) for inspection.
final class SinkTestSubscriber: Sendable {
    struct State {
        var messages = 0
        var lastSeq: UInt64? = nil
        var outOfOrder = 0
        var otherLines: [String] = []
        var closed = false
        var partial: [UInt8] = []
        var seqs: [UInt64] = []
    }

    let channel: any Channel
    let state: NIOLockedValueBox<State>
    let keepSeqs: Bool

    private init(channel: any Channel, state: NIOLockedValueBox<State>, keepSeqs: Bool) {
        self.channel = channel
        self.state = state
        self.keepSeqs = keepSeqs
    }

    static func connect(_ path: String, group: any EventLoopGroup, keepSeqs: Bool = false) async throws -> SinkTestSubscriber {
        let state = NIOLockedValueBox(State())
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LineCollector(state: state, keepSeqs: keepSeqs))
                }
            }
            .connect(unixDomainSocketPath: path).get()
        return SinkTestSubscriber(channel: channel, state: state, keepSeqs: keepSeqs)
    }

    var messages: Int { state.withLockedValue { $0.messages } }
    var closed: Bool { state.withLockedValue { $0.closed } }
    var otherLines: [String] { state.withLockedValue { $0.otherLines } }
    var outOfOrder: Int { state.withLockedValue { $0.outOfOrder } }
    var seqs: [UInt64] { state.withLockedValue { $0.seqs } }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Stop or resume reading from the socket (the kernel buffer then fills and the daemon's queue grows).
    func setReading(_ reading: Bool) async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: reading).get()
        if reading { channel.read() }
    }

    func close() async {
        try? await channel.close()
    }

    private final class LineCollector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>
        let keepSeqs: Bool
        init(state: NIOLockedValueBox<State>, keepSeqs: Bool) {
            self.state = state
            self.keepSeqs = keepSeqs
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let keepSeqs = self.keepSeqs
            state.withLockedValue { state in
                buffer.withUnsafeReadableBytes { raw in
                    var start = 0
                    let bytes = raw.bindMemory(to: UInt8.self)
                    while start < bytes.count {
                        guard let p = memchr(raw.baseAddress! + start, 0x0A, bytes.count - start) else {
                            state.partial.append(contentsOf: bytes[start...])
                            return
                        }
                        let end = raw.baseAddress!.distance(to: UnsafeRawPointer(p))
                        let line: [UInt8]
                        if state.partial.isEmpty {
                            line = Array(bytes[start..<end])
                        } else {
                            line = state.partial + bytes[start..<end]
                            state.partial.removeAll()
                        }
                        start = end + 1
                        SinkTestSubscriber.take(line, into: &state, keepSeqs: keepSeqs)
                    }
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    static let envelopePrefix = Array("{\"upstream\":".utf8)

    static func take(_ line: [UInt8], into state: inout State, keepSeqs: Bool) {
        guard line.starts(with: envelopePrefix), let seq = seq(in: line) else {
            state.otherLines.append(String(decoding: line, as: UTF8.self))
            return
        }
        state.messages += 1
        if let last = state.lastSeq, seq != last + 1 { state.outOfOrder += 1 }
        state.lastSeq = seq
        if keepSeqs { state.seqs.append(seq) }
    }

    static func seq(in line: [UInt8]) -> UInt64? {
        line.withUnsafeBytes { raw -> UInt64? in
            let n = raw.count
            var i = 0
            // `"seq":` comes early in an envelope line.
            while i + 6 <= n {
                if raw[i] == 0x22 && raw[i + 1] == 0x73 && raw[i + 2] == 0x65 && raw[i + 3] == 0x71 && raw[i + 4] == 0x22 && raw[i + 5] == 0x3A {
                    var j = i + 6
                    var value: UInt64 = 0
                    while j < n, raw[j] >= 0x30, raw[j] <= 0x39 {
                        value = value &* 10 &+ UInt64(raw[j] - 0x30)
                        j += 1
                    }
                    return value
                }
                i += 1
            }
            return nil
        }
    }
}

/// Records flow-control calls from sinks.
final class SinkTestFlowControl: UpstreamFlowControl, Sendable {
    let state = NIOLockedValueBox<(paused: Bool, pauses: Int, resumes: Int)>((false, 0, 0))
    func pause(by token: ObjectIdentifier) { state.withLockedValue { $0.paused = true; $0.pauses += 1 } }
    func resume(by token: ObjectIdentifier) { state.withLockedValue { $0.paused = false; $0.resumes += 1 } }
    var isPaused: Bool { state.withLockedValue { $0.paused } }
}

/// Runs services in the background until `stop()`.
final class SinkServiceRunner: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(services: [any Service]) {
        let group = ServiceGroup(configuration: .init(services: services, logger: SinkTest.logger))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}

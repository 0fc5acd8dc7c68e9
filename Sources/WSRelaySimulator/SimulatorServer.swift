import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// A local WebSocket upstream that misbehaves on request: floods, closes with a chosen code, ignores pings,
/// demands a bearer token, answers 401/429/503. Used by the tests, `wsrelay demo` and the benchmarks, and
/// runnable by hand as `wsrelay-sim`. Binds only where it is told (tests and benchmarks use 127.0.0.1).
public final class SimulatorServer: Sendable {
    public struct Options: Sendable {
        /// When set, the upgrade needs `Authorization: Bearer <token>` (or `?access_token=`) with one of these.
        public var requiredTokens: Set<String>? = nil
        public var tls: NIOSSLContext? = nil
        public init() {}
    }

    public let recorder = SimulatorRecorder()
    public let port: Int
    private let channel: any Channel
    private let tokens: NIOLockedValueBox<Set<String>?>
    private let open = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private let upgradeRequests = NIOLockedValueBox<[ObjectIdentifier: ContinuousClock.Instant]>([:])
    /// How many times `release()` was called; a `hold` connection opened before the n-th release starts with it.
    private let releases = NIOLockedValueBox(0)

    private init(channel: any Channel, tokens: Set<String>?) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
        self.tokens = NIOLockedValueBox(tokens)
    }

    public static func start(host: String = "127.0.0.1", port: Int = 0, group: any EventLoopGroup,
                             options: Options = .init()) async throws -> SimulatorServer {
        let box = NIOLockedValueBox<SimulatorServer?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard let server = box.withLockedValue({ $0 }) else { return channel.close() }
                return server.configure(channel, tls: options.tls)
            }
            .bind(host: host, port: port).get()
        let server = SimulatorServer(channel: channel, tokens: options.requiredTokens)
        box.withLockedValue { $0 = server }
        return server
    }

    public var url: String { "ws://127.0.0.1:\(port)" }

    /// Replaces the accepted tokens (token rotation); connections already open are unaffected.
    public func setValidTokens(_ newTokens: Set<String>?) {
        tokens.withLockedValue { $0 = newTokens }
    }

    /// Sends a close frame with `code` on every open connection.
    public func closeAll(code: UInt16, reason: String = "closed by simulator") {
        for channel in open.withLockedValue({ Array($0.values) }) {
            channel.eventLoop.execute {
                var buffer = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
                buffer.writeInteger(code)
                buffer.writeString(reason)
                channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer), promise: nil)
            }
        }
    }

    /// Drops every open TCP connection without a close frame (a crash, as seen by the client).
    public func dropAll() {
        for channel in open.withLockedValue({ Array($0.values) }) { channel.close(mode: .all, promise: nil) }
    }

    public var openConnectionCount: Int { open.withLockedValue { $0.count } }

    /// Starts every connection opened so far whose scenario has `hold=1`; connections opened later hold
    /// until the next release. Returns how many connections were open.
    @discardableResult
    public func release() -> Int {
        releases.withLockedValue { $0 += 1 }
        let channels = open.withLockedValue { Array($0.values) }
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(SimulatorRelease()) }
        return channels.count
    }

    public func stop() async {
        dropAll()
        try? await channel.close()
    }

    // MARK: - Per connection

    enum Decision {
        case upgrade(SimulatorScenario)
        case reject(status: Int, headers: [(String, String)])
    }

    func decide(_ head: HTTPRequestHead) -> Decision {
        let query = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        let scenario = SimulatorScenario(query: query)
        if let required = tokens.withLockedValue({ $0 }) {
            let bearer = head.headers.first(name: "Authorization").flatMap { value -> String? in
                value.hasPrefix("Bearer ") ? String(value.dropFirst(7)) : nil
            }
            let queryToken = query.split(separator: "&").first { $0.hasPrefix("access_token=") }
                .map { String($0.dropFirst("access_token=".count)).removingPercentEncodingLite }
            guard let token = bearer ?? queryToken, required.contains(token) else {
                return .reject(status: 401, headers: [("WWW-Authenticate", "Bearer error=\"invalid_token\"")])
            }
        }
        if let status = scenario.status {
            var headers: [(String, String)] = []
            if let retryAfter = scenario.retryAfter { headers.append(("Retry-After", retryAfter)) }
            return .reject(status: status, headers: headers)
        }
        return .upgrade(scenario)
    }

    private func configure(_ channel: any Channel, tls: NIOSSLContext?) -> EventLoopFuture<Void> {
        if let tls {
            do {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 24,
            automaticErrorHandling: true,
            shouldUpgrade: { [self] channel, head in
                guard case .upgrade = decide(head) else { return channel.eventLoop.makeSucceededFuture(nil) }
                let requestedAt = ContinuousClock.now
                upgradeRequests.withLockedValue { $0[ObjectIdentifier(channel)] = requestedAt }
                var headers = HTTPHeaders()
                if let offered = head.headers.first(name: "Sec-WebSocket-Protocol")?.split(separator: ",").first {
                    headers.add(name: "Sec-WebSocket-Protocol", value: offered.trimmingSpaces)
                }
                if case .upgrade(let scenario) = decide(head), Self.compresses(scenario, head) {
                    headers.add(name: "Sec-WebSocket-Extensions", value: "permessage-deflate")
                }
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            upgradePipelineHandler: { [self] channel, head in
                guard case .upgrade(let scenario) = decide(head) else { return channel.close() }
                let requestedAt = upgradeRequests.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
                let id = recorder.add(path: head.uri, headers: head.headers.map { ($0.name, $0.value) },
                                      accepted: true, status: 101, openedAt: requestedAt ?? .now)
                let key = ObjectIdentifier(channel)
                let generation = releases.withLockedValue { $0 }
                open.withLockedValue { $0[key] = channel }
                channel.closeFuture.whenComplete { [self] _ in
                    _ = open.withLockedValue { $0.removeValue(forKey: key) }
                    recorder.update(id) {
                        $0.closed = true
                        $0.closedAt = .now
                    }
                }
                return channel.pipeline.removeHandler(name: RejectingHTTPHandler.name).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(
                        SimulatedConnectionHandler(scenario: scenario, recorder: self.recorder, id: id,
                                                   compress: Self.compresses(scenario, head),
                                                   isReleased: { self.releases.withLockedValue { $0 } > generation }))
                }
            }
        )
        return channel.pipeline.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
        ).flatMap { [self] in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RejectingHTTPHandler(server: self), name: RejectingHTTPHandler.name)
            }
        }
    }
}

extension SimulatorServer {
    /// Whether this connection sends compressed messages: the scenario asks for it and the client offered it.
    static func compresses(_ scenario: SimulatorScenario, _ head: HTTPRequestHead) -> Bool {
        scenario.deflate && head.headers["Sec-WebSocket-Extensions"].contains { $0.lowercased().contains("permessage-deflate") }
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// Answers upgrade requests the scenario (or the token check) refuses, with the chosen status.
final class RejectingHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    static let name = "simulator-reject"
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: SimulatorServer

    init(server: SimulatorServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        var status = 400
        var extra: [(String, String)] = []
        if case .reject(let s, let h) = server.decide(head) {
            status = s
            extra = h
        }
        _ = server.recorder.add(path: head.uri, headers: head.headers.map { ($0.name, $0.value) }, accepted: false, status: status)
        var headers = HTTPHeaders(extra)
        let body = "simulator: HTTP \(status)\n"
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

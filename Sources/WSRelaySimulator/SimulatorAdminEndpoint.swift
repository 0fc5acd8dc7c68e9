import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP side door into a running simulator, so a harness in another process (the benchmarks) can
/// start held floods, close every connection with a code, and read counters:
///
///     GET  /stats                     {"open":N,"accepted":N,"rejected":N,"sent":N,"pings":N,
///                                      "tokens_issued":N,"now_ns":T,"last_upgrade_ago_ns":D}
///     POST /release                   starts `hold=1` connections: {"open":N,"at_ns":T}
///     POST /close-all?code=C&reason=R close frame on every connection: {"open":N,"at_ns":T}
///     POST /drop-all                  drops every TCP connection: {"open":N,"at_ns":T}
///
/// Times are CLOCK_MONOTONIC nanoseconds (`NIODeadline`), comparable with other processes on the machine.
/// `last_upgrade_ago_ns` is how long ago the newest accepted upgrade request arrived (-1: none yet).
/// Binds where it is told; the benchmarks use 127.0.0.1.
public final class SimulatorAdminEndpoint: Sendable {
    public let port: Int
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    public static func start(host: String = "127.0.0.1", port: Int = 0, group: any EventLoopGroup,
                             server: SimulatorServer, tokens: SimulatorTokenEndpoint? = nil) async throws -> SimulatorAdminEndpoint {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(server: server, tokens: tokens))
                }
            }
            .bind(host: host, port: port).get()
        return SimulatorAdminEndpoint(channel: channel)
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public func stop() async {
        try? await channel.close()
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: SimulatorServer
    private let tokens: SimulatorTokenEndpoint?
    private var head: HTTPRequestHead?

    init(server: SimulatorServer, tokens: SimulatorTokenEndpoint?) {
        self.server = server
        self.tokens = tokens
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let (status, body) = answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? "/"
        let query = parts.count > 1 ? AdminQuery(String(parts[1])) : AdminQuery("")
        switch (head.method, path) {
        case (.GET, "/stats"):
            return (.ok, stats())
        case (.POST, "/release"):
            let open = server.release()
            return (.ok, "{\"open\":\(open),\"at_ns\":\(NIODeadline.now().uptimeNanoseconds)}")
        case (.POST, "/close-all"):
            let open = server.openConnectionCount
            let at = NIODeadline.now().uptimeNanoseconds
            server.closeAll(code: UInt16(query["code"] ?? "") ?? 1000, reason: query["reason"] ?? "closed by simulator")
            return (.ok, "{\"open\":\(open),\"at_ns\":\(at)}")
        case (.POST, "/drop-all"):
            let open = server.openConnectionCount
            let at = NIODeadline.now().uptimeNanoseconds
            server.dropAll()
            return (.ok, "{\"open\":\(open),\"at_ns\":\(at)}")
        default:
            return (.notFound, "{\"error\":\"GET /stats, POST /release, POST /close-all?code=C, POST /drop-all\"}")
        }
    }

    private func stats() -> String {
        let connections = server.recorder.connections
        var accepted = 0
        var pings = 0
        var newest: ContinuousClock.Instant?
        for connection in connections where connection.accepted {
            accepted += 1
            pings += connection.pings.count
            if newest.map({ connection.openedAt > $0 }) ?? true { newest = connection.openedAt }
        }
        let ago = newest.map { (ContinuousClock.now - $0).nanoseconds } ?? -1
        return "{\"open\":\(server.openConnectionCount),\"accepted\":\(accepted),\"rejected\":\(connections.count - accepted),"
            + "\"sent\":\(server.recorder.totalSent),\"pings\":\(pings),\"tokens_issued\":\(tokens?.requestCount ?? 0),"
            + "\"now_ns\":\(NIODeadline.now().uptimeNanoseconds),\"last_upgrade_ago_ns\":\(ago)}"
    }
}

/// `key=value&...` of an admin request, percent-decoded.
private struct AdminQuery {
    private var values: [String: String] = [:]

    init(_ query: String) {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            values[parts[0]] = parts.count > 1 ? parts[1].removingPercentEncodingLite : ""
        }
    }

    subscript(key: String) -> String? { values[key] }
}

private extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A local OAuth 2.0 token endpoint for `wsrelay demo` and manual experiments: every POST gets a new access
/// token `sim-token-N` (JSON, `expires_in` 3600), and `onIssue` lets the caller make the simulator accept
/// exactly that token from then on (token rotation).
public final class SimulatorTokenEndpoint: Sendable {
    public let port: Int
    private let channel: any Channel
    private let issued = NIOLockedValueBox(0)

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    public static func start(host: String = "127.0.0.1", port: Int = 0, group: any EventLoopGroup,
                             onIssue: @escaping @Sendable (String) -> Void) async throws -> SimulatorTokenEndpoint {
        let box = NIOLockedValueBox<SimulatorTokenEndpoint?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(TokenHandler { box.withLockedValue { $0 }?.issue(onIssue) ?? "" })
                }
            }
            .bind(host: host, port: port).get()
        let endpoint = SimulatorTokenEndpoint(channel: channel)
        box.withLockedValue { $0 = endpoint }
        return endpoint
    }

    public var url: String { "http://127.0.0.1:\(port)/token" }

    /// How many tokens were issued (= token requests answered).
    public var requestCount: Int { issued.withLockedValue { $0 } }

    func issue(_ onIssue: @Sendable (String) -> Void) -> String {
        let token = "sim-token-\(issued.withLockedValue { $0 += 1; return $0 })"
        onIssue(token)
        return token
    }

    public func stop() async {
        try? await channel.close()
    }
}

private final class TokenHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let issue: () -> String

    init(issue: @escaping () -> String) { self.issue = issue }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let body = "{\"access_token\":\"\(issue())\",\"token_type\":\"Bearer\",\"expires_in\":3600}"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import WSRelayTestSupport

/// A real HTTP/1.1 token endpoint on 127.0.0.1 (an ephemeral port) for tests.
///
/// It records every request (method, path, headers, body; form and JSON bodies decoded), and answers each
/// with the next scripted `Response`, or, when the script is empty, with the default responder (by default:
/// a fresh access token `access-N`, N counting requests from 1, `expires_in` 3600).
///
/// ```swift
/// let endpoint = try await TokenEndpoint.start()
/// defer { Task { await endpoint.shutdown() } }       // or `await endpoint.shutdown()` at the end
/// endpoint.enqueue(.token(access: "A1", refresh: "R1", expiresIn: 60), .oauthError(error: "invalid_grant"))
/// ... point an [auth.X] token_url at endpoint.url ...
/// #expect(await endpoint.waitForRequests(2))
/// #expect(endpoint.requests[0].form["grant_type"] == "refresh_token")
/// ```
final class TokenEndpoint: Sendable {
    struct Request: Sendable, CustomStringConvertible {
        var method: String
        /// The request target: path and query.
        var path: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        /// 1-based position among all requests this endpoint received.
        var number: Int

        var bodyText: String { String(decoding: body, as: UTF8.self) }

        /// The first header of that name (case-insensitive).
        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// The body decoded as `application/x-www-form-urlencoded` (later duplicates win).
        var form: [String: String] {
            var result: [String: String] = [:]
            for pair in bodyText.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = Self.formDecode(parts[0])
                result[key] = parts.count > 1 ? Self.formDecode(parts[1]) : ""
            }
            return result
        }

        /// The body as a JSON object, if it is one.
        func jsonObject() -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }

        /// The string-valued top-level fields of a JSON body.
        var jsonStrings: [String: String] {
            (jsonObject() ?? [:]).compactMapValues { $0 as? String }
        }

        /// `Authorization: Basic` credentials, base64-decoded (not form-decoded).
        var basicCredentials: (user: String, password: String)? {
            guard let value = header("Authorization"), value.hasPrefix("Basic "),
                  let data = Data(base64Encoded: String(value.dropFirst(6))),
                  let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { return nil }
            return (String(text[..<colon]), String(text[text.index(after: colon)...]))
        }

        var description: String { "\(method) \(path) #\(number) (\(body.count) bytes)" }

        static func formDecode(_ text: Substring) -> String {
            let spaced = text.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
    }

    indirect enum Response: Sendable {
        /// 200 with `{"access_token", "token_type": "Bearer", "expires_in"?, "refresh_token"?}`.
        case token(access: String, refresh: String? = nil, expiresIn: Int? = 3600)
        /// An RFC 6749 §5.2 error: `{"error", "error_description"?}` with the status (default 400 invalid_grant).
        case oauthError(status: Int = 400, error: String = "invalid_grant", description: String? = nil)
        /// Any status with a JSON (or other) body.
        case json(status: Int = 200, String)
        /// A bare status, e.g. `.status(500)`.
        case status(Int, body: String = "")
        /// Never answers; the connection stays open until the client gives up or the endpoint shuts down.
        case hang
        /// Closes the connection without answering.
        case closeConnection
        /// Answers `response` after `delay`.
        case delayed(Duration, Response)
    }

    private struct State {
        var script: [Response] = []
        var responder: @Sendable (Request) -> Response = { .token(access: "access-\($0.number)") }
        var requests: [Request] = []
        var children: [ObjectIdentifier: any Channel] = [:]
        var shutDown = false
    }

    let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let serverChannel: any Channel
    private let state: NIOLockedValueBox<State>

    /// `http://127.0.0.1:PORT/token`.
    var url: String { url(path: "/token") }

    func url(path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    private init(port: Int, group: MultiThreadedEventLoopGroup, serverChannel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.group = group
        self.serverChannel = serverChannel
        self.state = state
    }

    static func start() async throws -> TokenEndpoint {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = NIOLockedValueBox(State())
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            guard let port = channel.localAddress?.port else {
                try? await channel.close()
                throw ChannelError.unknownLocalAddress
            }
            return TokenEndpoint(port: port, group: group, serverChannel: channel, state: state)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Responses for the next requests, in order (appended to any still pending).
    func enqueue(_ responses: Response...) {
        state.withLockedValue { $0.script.append(contentsOf: responses) }
    }

    /// How to answer once the script is used up.
    func setDefault(_ responder: @escaping @Sendable (Request) -> Response) {
        state.withLockedValue { $0.responder = responder }
    }

    var requests: [Request] { state.withLockedValue { $0.requests } }
    var requestCount: Int { state.withLockedValue { $0.requests.count } }

    /// Waits until at least `count` requests arrived, or `timeout` passes.
    func waitForRequests(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await waitUntil(timeout: timeout) { requestCount >= count }
    }

    /// Closes the listener and every open connection (also hanging ones), then the event loop.
    func shutdown() async {
        let children = state.withLockedValue { state -> [any Channel] in
            state.shutDown = true
            return Array(state.children.values)
        }
        try? await serverChannel.close()
        for child in children { try? await child.close() }
        try? await group.shutdownGracefully()
    }

    /// A port on 127.0.0.1 that nothing listens on (bound, then closed): connections to it are refused.
    static func unusedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 1
        try await channel.close()
        return port
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let state: NIOLockedValueBox<State>
        private var head: HTTPRequestHead?
        private var body: [UInt8] = []

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelActive(context: ChannelHandlerContext) {
            let channel = context.channel
            let closeNow = state.withLockedValue { state -> Bool in
                if !state.shutDown { state.children[ObjectIdentifier(channel)] = channel }
                return state.shutDown
            }
            if closeNow { context.close(promise: nil) }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            let id = ObjectIdentifier(context.channel)
            state.withLockedValue { _ = $0.children.removeValue(forKey: id) }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let buffer):
                body.append(contentsOf: buffer.readableBytesView)
            case .end:
                guard let head else { return }
                self.head = nil
                let (request, scripted, responder) = state.withLockedValue {
                    state -> (Request, Response?, @Sendable (Request) -> Response) in
                    let request = Request(
                        method: head.method.rawValue, path: head.uri,
                        headers: head.headers.map { (name: $0.name, value: $0.value) }, body: body,
                        number: state.requests.count + 1
                    )
                    state.requests.append(request)
                    return (request, state.script.isEmpty ? nil : state.script.removeFirst(), state.responder)
                }
                let response = scripted ?? responder(request)
                answer(context: context, response, keepAlive: head.isKeepAlive)
            }
        }

        private func answer(context: ChannelHandlerContext, _ response: Response, keepAlive: Bool) {
            switch response {
            case .hang:
                return
            case .closeConnection:
                context.close(promise: nil)
            case .delayed(let delay, let inner):
                let nanos = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanos)) {
                    self.answer(context: context, inner, keepAlive: keepAlive)
                }
            case .token(let access, let refresh, let expiresIn):
                var object: [String: Any] = ["access_token": access, "token_type": "Bearer"]
                if let refresh { object["refresh_token"] = refresh }
                if let expiresIn { object["expires_in"] = expiresIn }
                write(context: context, status: 200, body: Self.json(object), keepAlive: keepAlive)
            case .oauthError(let status, let error, let description):
                var object: [String: Any] = ["error": error]
                if let description { object["error_description"] = description }
                write(context: context, status: status, body: Self.json(object), keepAlive: keepAlive)
            case .json(let status, let text):
                write(context: context, status: status, body: text, keepAlive: keepAlive)
            case .status(let status, let text):
                write(context: context, status: status, body: text, keepAlive: keepAlive)
            }
        }

        private func write(context: ChannelHandlerContext, status: Int, body: String, keepAlive: Bool) {
            guard context.channel.isActive else { return }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            headers.add(name: "Cache-Control", value: "no-store")
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                done.whenComplete { _ in loopBoundContext.value.close(promise: nil) }
            }
        }

        private static func json(_ object: [String: Any]) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        }
    }
}

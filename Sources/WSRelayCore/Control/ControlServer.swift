import Glibc
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// What the control socket does with a request; the daemon implements it (`DaemonControl`).
protocol ControlResponder: Sendable {
    func respond(to request: ControlRequest) async -> ControlReply
    /// Called every `ControlServer.tickInterval` while the server runs (for message rates).
    func tick()
    /// Who may connect, read at each connection so a reload of `control_allow_gids` applies at once.
    var policy: ControlPeerPolicy { get }
}

/// The control socket (`[daemon] control_socket`): one JSON request per line in, one JSON reply per line out.
///
/// Every connection is a child task of `run()` (structured: shutdown closes the listener and ends them all).
/// A peer that is not allowed gets one error line and is disconnected; a line that is not a request gets an
/// error reply and the connection stays usable; a line longer than `maximumLineLength` ends the connection.
final class ControlServer: Service, Sendable {
    static let maximumLineLength = 64 * 1024
    static let tickInterval: Duration = .seconds(5)

    let path: String
    private let listener: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let responder: any ControlResponder
    /// The socket file, removed at shutdown if it is still ours.
    private let owned: OwnedSocketPath?
    private let logger: Logger

    private init(path: String, listener: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>,
                 responder: any ControlResponder, owned: OwnedSocketPath?, logger: Logger) {
        self.path = path
        self.listener = listener
        self.responder = responder
        self.owned = owned
        self.logger = logger
    }

    /// Binds the socket (mode 0660), creating its directory if missing. Errors are startup errors naming the
    /// path, the config key and the cause.
    static func open(path: String, group: any EventLoopGroup, responder: any ControlResponder, logger: Logger)
        async throws -> ControlServer {
        let role = "control socket ([daemon] control_socket)"
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty, access(directory, F_OK) != 0, mkdir(directory, 0o755) != 0 {
            throw SetupError("\(role) \(path): cannot create \(directory): \(SystemError.describe(errno))")
        }
        let (listener, owned) = try await UnixSocketPath.bindListener(
            path, role: role, mode: 0o660, logger: logger,
            bind: {
                try await ServerBootstrap(group: group)
                    .serverChannelOption(ChannelOptions.backlog, value: 64)
                    .serverChannelInitializer { channel in
                        AcceptFailureBackoff.install(on: channel, label: "control socket \(path)", logger: logger,
                                                     holdWhileScarce: false)
                    }
                    .bind(unixDomainSocketPath: path) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
            },
            close: { try? await $0.channel.close() })
        let server = ControlServer(path: path, listener: listener, responder: responder, owned: owned, logger: logger)
        return server
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            try await self.listener.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { try await self.tickLoop() }
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        }
        await close()
    }

    /// Closes the listener (if still open) and removes the socket file if it is still ours.
    func close() async {
        try? await listener.channel.close()
        owned?.remove()
    }

    private func tickLoop() async throws {
        while true {
            responder.tick()
            try await Task.sleep(for: Self.tickInterval)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let peer = (try? await PeerCredentials.of(connection.channel).get()) ?? .unknown
        try? await connection.executeThenClose { inbound, outbound in
            let policy = responder.policy
            guard policy.allows(uid: peer.uid, gid: peer.gid,
                                supplementaryGIDs: ControlPeerPolicy.supplementaryGroups(of: peer.pid)) else {
                logger.warning("control socket: refused \(peer)")
                try await outbound.write(ByteBuffer(bytes: ControlReply.failure(
                    "permission denied: uid \(peer.uid) is not root, the daemon's user or in control_allow_gids").line))
                return
            }
            var framer = LineFramer(maximumLength: Self.maximumLineLength)
            for try await chunk in inbound {
                var lines: [[UInt8]] = []
                let overflow = framer.append(chunk.readableBytesView) { lines.append($0) }
                for line in lines where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) {
                    let reply: ControlReply
                    switch ControlRequest.parse(line) {
                    case .success(let request):
                        logger.info("control: \(request.line)", metadata: ["peer": "\(peer)"])
                        reply = await responder.respond(to: request)
                    case .failure(let error):
                        logger.notice("control: bad request from \(peer): \(error)")
                        reply = .failure(error.description)
                    }
                    try await outbound.write(ByteBuffer(bytes: reply.line))
                }
                if overflow {
                    try await outbound.write(ByteBuffer(bytes: ControlReply.failure(
                        "request line longer than \(Self.maximumLineLength) bytes; closing").line))
                    return
                }
            }
        }
    }
}

/// Splits a byte stream into lines (LF, an optional CR before it is kept for the parser to ignore).
struct LineFramer: Sendable {
    let maximumLength: Int
    private var partial: [UInt8] = []

    init(maximumLength: Int) { self.maximumLength = maximumLength }

    /// Calls `line` for each complete line in `bytes`; returns true when a line exceeded the maximum.
    mutating func append(_ bytes: some Collection<UInt8>, line: ([UInt8]) -> Void) -> Bool {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                line(partial)
                partial.removeAll(keepingCapacity: true)
            } else {
                partial.append(byte)
                if partial.count > maximumLength { return true }
            }
        }
        return false
    }
}

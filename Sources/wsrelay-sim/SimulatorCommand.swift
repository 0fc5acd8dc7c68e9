import ArgumentParser
import NIOPosix
import WSRelaySimulator

/// `wsrelay-sim`: the project's local upstream, by hand. Scenarios are chosen per connection by the URL's
/// query string, e.g. ws://127.0.0.1:9001/feed?count=1000&size=100&rate=500&close=4001
@main
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsrelay-sim",
        abstract: "A local WebSocket upstream that floods, closes with chosen codes, ignores pings or demands a token.",
        discussion: """
            Query parameters of the connection URL: count=N size=BYTES rate=MSG_PER_S binary=1 fragments=N
            close=CODE close_after=N close_reason=TEXT ignore_pings=1 status=HTTP retry_after=SECONDS
            invalid_utf8=1 oversize=BYTES echo=1 ignore_close=1. Messages are {"n":<server-wide number>,"pad":"x..."}.
            """
    )

    @Option(help: "Address to listen on (loopback only is sensible).")
    var host = "127.0.0.1"

    @Option(help: "Port (0 picks a free one and prints it).")
    var port = 9001

    @Option(name: .customLong("token"), help: "Require this bearer token (repeatable); without it any client is accepted.")
    var tokens: [String] = []

    func run() async throws {
        var options = SimulatorServer.Options()
        if !tokens.isEmpty { options.requiredTokens = Set(tokens) }
        let server = try await SimulatorServer.start(host: host, port: port, group: MultiThreadedEventLoopGroup.singleton,
                                                     options: options)
        print("wsrelay-sim listening on ws://\(host):\(server.port)/ (Ctrl-C to stop)")
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}


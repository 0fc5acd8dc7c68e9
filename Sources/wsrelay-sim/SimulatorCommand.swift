import ArgumentParser
import NIOPosix
import WSRelaySimulator

#if canImport(Glibc)
import Glibc
#endif

/// `wsrelay-sim`: the project's local upstream, by hand. Scenarios are chosen per connection by the URL's
/// query string, e.g. ws://127.0.0.1:9001/feed?count=1000&size=100&rate=500&close=4001
@main
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsrelay-sim",
        abstract: "A local WebSocket upstream that floods, closes with chosen codes, ignores pings or demands a token.",
        discussion: """
            Query parameters of the connection URL: count=N size=BYTES rate=MSG_PER_S binary=1 fragments=N \
            close=CODE close_after=N close_reason=TEXT ignore_pings=1 status=HTTP retry_after=SECONDS \
            invalid_utf8=1 oversize=BYTES echo=1 ignore_close=1 stamp=1 hold=1. Messages are \
            {"n":<server-wide number>,"pad":"x..."}; with stamp=1 {"n":N,"t":<CLOCK_MONOTONIC ns at send>,"pad":...}. \
            trades=1 fills text messages with trade records instead of "x"s; deflate=1 accepts a permessage-deflate \
            offer and compresses every message. hold=1 sends nothing until POST /release on the admin port.

            --token-endpoint-port starts an OAuth 2.0 token endpoint (POST http://127.0.0.1:PORT/token) that issues \
            sim-token-1, sim-token-2, ...; from then on the upstream accepts only the newest issued token (plus any \
            --token), and nothing before the first one is issued.

            --admin-port serves GET /stats, POST /release, POST /close-all?code=C&reason=R and POST /drop-all \
            (JSON) for benchmark harnesses.
            """
    )

    @Option(help: "Address to listen on (loopback only is sensible).")
    var host = "127.0.0.1"

    @Option(help: "Port (0 picks a free one and prints it).")
    var port = 9001

    @Option(name: .customLong("token"), help: "Require this bearer token (repeatable); without it any client is accepted.")
    var tokens: [String] = []

    @Option(help: "Also run a token endpoint on this port (0: a free one); the upstream then demands its newest token.")
    var tokenEndpointPort: Int?

    @Option(help: "Also run the admin HTTP endpoint on this port (0: a free one).")
    var adminPort: Int?

    func run() async throws {
        raiseFileDescriptorLimit()
        let group = MultiThreadedEventLoopGroup.singleton
        var options = SimulatorServer.Options()
        if !tokens.isEmpty || tokenEndpointPort != nil { options.requiredTokens = Set(tokens) }
        let server = try await SimulatorServer.start(host: host, port: port, group: group, options: options)
        print("wsrelay-sim listening on ws://\(host):\(server.port)/ (Ctrl-C to stop)")
        var tokenEndpoint: SimulatorTokenEndpoint?
        if let tokenEndpointPort {
            let fixed = Set(tokens)
            tokenEndpoint = try await SimulatorTokenEndpoint.start(host: host, port: tokenEndpointPort, group: group) { token in
                server.setValidTokens(fixed.union([token]))
            }
            print("token endpoint http://\(host):\(tokenEndpoint!.port)/token")
        }
        if let adminPort {
            let admin = try await SimulatorAdminEndpoint.start(host: host, port: adminPort, group: group, server: server,
                                                               tokens: tokenEndpoint)
            print("admin endpoint http://\(host):\(admin.port)/stats")
        }
        fflush(nil)  // every stream: stdout is a global the concurrency checker will not touch
        while true { try await Task.sleep(for: .seconds(3600)) }
    }

    /// Thousands of simulated upstreams need as many descriptors: use the whole hard limit.
    private func raiseFileDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

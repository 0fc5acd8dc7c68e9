import ArgumentParser
import WSRelayCore

/// `wsrelay tail`: print what a Unix socket sink sends, as it arrives.
struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Subscribe to the daemon's Unix socket and print what arrives.",
        discussion: """
            Prints one line per message as the socket's [[sink]] writes it (envelope JSON, or raw). Replies from \
            the daemon and, with --raw, connected/disconnected/gap records go to stderr.
            Exit status: 0 when the daemon closes the connection, 64 when it rejects an --upstream name, \
            69 when the socket is missing, refuses the connection or this user is not allowed.
            """
    )

    @Option(name: .long, help: ArgumentHelp(
        "Socket of a [[sink]] type = \"unix\". Default: \(TailClient.defaultSocketPath).", valueName: "path"))
    var socket: String = TailClient.defaultSocketPath

    @Option(name: .customLong("upstream"), help: ArgumentHelp(
        "Only this upstream (repeat for several). Default: every upstream the socket carries.", valueName: "name"))
    var upstreams: [String] = []

    @Flag(name: .long, help: "Print only each message's data (binary messages base64-decoded), one per line.")
    var raw = false

    func run() throws {
        let status = TailClient(options: .init(socketPath: socket, upstreams: upstreams, raw: raw)).run()
        if status != 0 { throw ExitCode(status) }
    }
}

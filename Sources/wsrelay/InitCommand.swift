import ArgumentParser
import WSRelayCore

/// `wsrelay init`: print a commented starter config (one upstream, one file sink) to begin with.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Print a commented starter config for one upstream and one file sink.",
        discussion: """
            Usage: wsrelay init --name market --url wss://feed.example.com/v1/stream > /etc/wsrelay/wsrelay.toml
            The output passes check-config as it is. Exit status 64 when --name, --url or --file would not make \
            a valid config (the reason is printed).
            """
    )

    @Option(name: .long, help: ArgumentHelp("The upstream's name (letters, digits, _ . -).", valueName: "name"))
    var name = StarterConfig.Options().name

    @Option(name: .long, help: ArgumentHelp("The upstream's ws:// or wss:// URL.", valueName: "url"))
    var url = StarterConfig.Options().url

    @Option(name: .long, help: ArgumentHelp("The file sink's path. Default: /var/log/wsrelay/NAME.jsonl.",
                                            valueName: "path"))
    var file: String?

    func run() throws {
        switch StarterConfig.render(.init(name: name, url: url, file: file)) {
        case .success(let text):
            print(text, terminator: "")
        case .failure(let error):
            for diagnostic in error.errors { printError("wsrelay init: \(diagnostic) (from --name, --url or --file)") }
            throw ExitCode(DaemonExitCode.usage.rawValue)
        }
    }
}

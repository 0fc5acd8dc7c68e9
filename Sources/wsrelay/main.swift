import ArgumentParser
import Foundation
import WSRelayCore

// Top-level code runs on the main thread and, until the first `await`, on the only thread: `wsrelay run`
// parses, loads its config and forks (for --daemon) here, before SwiftNIO or Swift concurrency start any.
let environment = ProcessInfo.processInfo.environment
let command: any ParsableCommand
do {
    command = try WSRelayCommand.parseAsRoot()
} catch {
    WSRelayCommand.exit(withError: error)
}

if let demo = command as? DemoCommand {
    exit(await demo.execute())
} else if let probe = command as? ProbeCommand {
    exit(await probe.execute())
} else if let run = command as? Run {
    let launch = Launcher.prepare(run.launchOptions(environment: environment), environment: environment)
    let status = await Daemon(launch).run()
    exit(status)
} else {
    do {
        var other = command
        try other.run()
        exit(0)
    } catch {
        WSRelayCommand.exit(withError: error)
    }
}

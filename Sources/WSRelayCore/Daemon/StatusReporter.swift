import ServiceLifecycle

/// Sends `STATUS=` to systemd whenever the summary line changes: at once on a state change, and every few
/// seconds for the message count (which changes too often to report each time).
struct StatusReporter: Service {
    let board: DaemonStatusBoard
    let notifier: SystemdNotifier
    var countRefresh: Duration = .seconds(5)
    /// Problems of the sinks, read on every periodic tick (sinks do not report to the board themselves).
    var sinkProblems: @Sendable () -> [String] = { [] }

    func run() async throws {
        guard notifier.isEnabled else {
            try? await gracefulShutdown()
            return
        }
        let board = self.board
        let notifier = self.notifier
        let refresh = countRefresh
        let sinkProblems = self.sinkProblems
        var last = DaemonStatusBoard.line(board.snapshot)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Periodic tick so counters reach STATUS= even without state changes.
                while !Task.isCancelled {
                    try? await Task.sleep(for: refresh)
                    let problems = sinkProblems()
                    board.update { $0.sinkProblems = problems }
                }
            }
            for await _ in board.changeStream.cancelOnGracefulShutdown() {
                let line = DaemonStatusBoard.line(board.snapshot)
                if line != last {
                    notifier.status(line)
                    last = line
                }
            }
            group.cancelAll()
        }
    }
}

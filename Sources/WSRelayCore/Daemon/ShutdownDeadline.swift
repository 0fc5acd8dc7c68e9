import Logging

/// The bound on a graceful shutdown, enforced without crashing. ServiceGroup gives services
/// `shutdown_timeout` to finish and then cancels them; if cancellation also hangs, its own timeout would
/// `fatalError` (a trap and a core dump). Instead, once `start()` was called, `run()` waits `limit`
/// (`shutdown_timeout` plus `cancellationGrace`) and, if the process is still there, says so and leaves
/// through `ForcedExit` (exit status 1, no line cut in half). Runs beside the service group and is cancelled
/// when the group returns.
struct ShutdownDeadline: Sendable {
    /// How long cancelled services get after `shutdown_timeout` before the process leaves anyway.
    static let cancellationGrace: Duration = .seconds(2)

    let limit: Duration
    let logger: Logger
    let forcedExit: ForcedExit
    private let started: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(limit: Duration, logger: Logger, forcedExit: ForcedExit) {
        self.limit = limit
        self.logger = logger
        self.forcedExit = forcedExit
        (started, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The graceful shutdown began: the clock runs from now.
    func start() {
        continuation.yield()
    }

    func run() async {
        for await _ in started {
            do {
                try await Task.sleep(for: limit)
            } catch {
                return  // the group finished in time
            }
            logger.error("shutdown did not finish within \(limit) (shutdown_timeout + \(Self.cancellationGrace) for cancelled services); exiting now")
            forcedExit.exitNow(code: .failure)
        }
    }
}

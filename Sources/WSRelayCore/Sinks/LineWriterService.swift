import NIOPosix
import ServiceLifecycle

/// Runs a blocking writer loop on a thread of its own until graceful shutdown (`requestStop(.drain)`: the loop
/// drains and returns) or task cancellation (`requestStop(.abort)`: the loop gives up what is left). Blocking
/// I/O never runs on an event loop or on the cooperative pool.
func runOnDedicatedThread(
    name: String,
    loop: @escaping @Sendable () -> Void,
    requestStop: @escaping @Sendable (LineWriter.StopRequest) -> Void
) async throws {
    let pool = NIOThreadPool(numberOfThreads: 1)
    pool._start(threadNamePrefix: name)
    let result: Result<Void, any Error>
    do {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await pool.runIfActive { loop() }
            } onGracefulShutdown: {
                requestStop(.drain)
            }
        } onCancel: {
            requestStop(.abort)
        }
        result = .success(())
    } catch {
        result = .failure(error)
    }
    try? await pool.shutdownGracefully()
    try result.get()
}

extension LineWriter {
    func runOnDedicatedThread(name: String) async throws {
        try await WSRelayCore.runOnDedicatedThread(
            name: name, loop: { self.runLoop() }, requestStop: { self.requestStop($0) })
    }
}

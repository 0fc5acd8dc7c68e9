import ServiceLifecycle

/// Runs one upstream for the life of the daemon's service group: starts its driver, and on graceful
/// shutdown closes it with 1001 and waits for the closing handshake (bounded by the supervisor's close
/// timeout) before returning, so the sinks that are shut down after it have received everything.
public struct UpstreamService: Service {
    public let driver: UpstreamDriver

    public init(driver: UpstreamDriver) {
        self.driver = driver
    }

    public func run() async throws {
        let driver = self.driver
        await withDiscardingTaskGroup { group in
            group.addTask { await driver.serveCredentialRequests() }  // ends when the driver finishes
            driver.start()
            await withGracefulShutdownHandler {
                try? await driver.finished.get()
            } onGracefulShutdown: {
                driver.shutdown()
            }
            group.cancelAll()  // a fetch still waiting on a token endpoint is no longer wanted
        }
    }
}

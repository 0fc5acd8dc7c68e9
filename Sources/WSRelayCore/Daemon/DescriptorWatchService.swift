import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Runs `DescriptorReserve.check` once a second on an event loop (a NIO timer, not a task: nothing here
/// needs the cooperative pool, which is itself what libdispatch's monitor looks at) and logs the start and
/// end of each scarcity once.
public struct DescriptorWatchService: Service {
    static let interval: TimeAmount = .seconds(1)

    private let loop: any EventLoop
    private let reserve: DescriptorReserve
    private let logger: Logger

    public init(loop: any EventLoop, reserve: DescriptorReserve = .process, logger: Logger) {
        self.loop = loop
        self.reserve = reserve
        self.logger = logger
    }

    public func run() async throws {
        let reserve = self.reserve
        let logger = self.logger
        let logged = NIOLockedValueBox(false)
        let task = loop.scheduleRepeatedTask(initialDelay: Self.interval, delay: Self.interval) { _ in
            reserve.check()
            let scarce = reserve.isScarce
            let changed = logged.withLockedValue { was -> Bool in
                defer { was = scarce }
                return was != scarce
            }
            guard changed else { return }
            if scarce {
                logger.error("out of file descriptors: released \(DescriptorReserve.size) reserved ones for the system libraries; no new upstream connections or subscribers until descriptors are free again")
            } else {
                logger.notice("file descriptors are available again: connecting and accepting subscribers again")
            }
        }
        try? await gracefulShutdown()
        task.cancel()
    }
}

import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Keeps systemd's watchdog fed, but only while every event loop is actually turning.
///
/// Each loop stamps a heartbeat from a task scheduled on itself; the ping to systemd is sent from the first
/// loop and only when all heartbeats are fresh. A wedged loop (a blocking call, a livelock) therefore stops
/// the pings and systemd restarts the daemon, which a ping from an independent timer thread would hide.
public struct WatchdogService: Service {
    private let loops: [any EventLoop]
    private let notifier: SystemdNotifier
    private let interval: Duration
    private let logger: Logger

    public init(group: any EventLoopGroup, notifier: SystemdNotifier, interval: Duration, logger: Logger) {
        self.loops = Array(group.makeIterator())
        self.notifier = notifier
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let half = TimeAmount.nanoseconds(interval.nanosecondsClamped / 2)
        let beat = TimeAmount.nanoseconds(interval.nanosecondsClamped / 4)
        let heartbeats = NIOLockedValueBox([NIODeadline](repeating: .now(), count: loops.count))
        var tasks: [RepeatedTask] = []
        for (index, loop) in loops.enumerated() {
            tasks.append(loop.scheduleRepeatedTask(initialDelay: .zero, delay: beat) { _ in
                heartbeats.withLockedValue { $0[index] = .now() }
            })
        }
        let notifier = self.notifier
        let logger = self.logger
        let loopCount = loops.count
        tasks.append(loops[0].scheduleRepeatedTask(initialDelay: .zero, delay: half) { _ in
            let now = NIODeadline.now()
            let stale = heartbeats.withLockedValue { beats in beats.indices.filter { now - beats[$0] > half } }
            if stale.isEmpty {
                notifier.watchdog()
            } else {
                logger.error("event loop not responding, withholding watchdog ping", metadata: [
                    "stale_loops": "\(stale.count)/\(loopCount)",
                ])
            }
        })
        logger.debug("watchdog enabled", metadata: ["interval": "\(interval)"])
        try? await gracefulShutdown()
        for task in tasks { task.cancel() }
    }
}

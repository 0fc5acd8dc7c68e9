import Glibc
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// The asynchronous second half of `wsrelay run`: from the first thread to the exit status.
///
/// Order matters and is the daemon's contract with systemd and with a `--daemon` launcher: signals are trapped
/// first; then sinks and sockets are opened; only then READY=1, the PID file and the readiness pipe (upstreams
/// connect in the background: readiness never waits on a remote server). SIGTERM starts a graceful shutdown
/// in which upstreams are closed before sinks drain; a second SIGTERM exits at once.
public final class Daemon {
    private let launch: PreparedLaunch
    private let configuration: Configuration
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let forcedExit = ForcedExit()
    /// systemd's file descriptor store: listening sockets and subscribers survive a restart.
    private let fdStore: FileDescriptorStore
    /// Yields once when a shutdown begins (for `extendStopWhileDraining`).
    private let stopping = AsyncStream.makeStream(of: Void.self)

    public init(_ launch: PreparedLaunch) {
        self.launch = launch
        self.configuration = launch.loaded.configuration
        self.logger = Logger(label: "wsrelay")
        self.notifier = SystemdNotifier(environment: launch.environment)
        self.fdStore = FileDescriptorStore(environment: launch.environment)
    }

    public func run() async -> Int32 {
        for warning in launch.loaded.warnings {
            logger.warning("\(warning)")
        }
        let signals = await SignalHandling.trap()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, 4)))
        let status = await run(group: group, signals: signals)
        try? await group.shutdownGracefully()
        return status
    }

    private func run(group: MultiThreadedEventLoopGroup, signals: UnixSignalsSequence) async -> Int32 {
        let board = DaemonStatusBoard()
        let metrics = RelayMetrics(configuration.metrics)
        let metricsService: MetricsService?
        let runtime: RelayRuntime
        do {
            runtime = try await RelayRuntime.open(
                configuration: configuration, group: group, board: board, forcedExit: forcedExit,
                environment: launch.environment, logger: logger, metrics: metrics, fdStore: fdStore)
            metricsService = try await MetricsService.open(
                configuration.metrics, metrics: metrics, group: group, logger: logger,
                sinks: { [sinks = runtime.sinks] in sinks.snapshot() })
        } catch {
            return startupFailed("\(error)")
        }
        let reloader = ConfigReloader(
            path: launch.options.configPath,
            environment: launch.environment,
            logLevelOverride: launch.options.logLevel,
            logLevel: launch.logLevel,
            runtime: runtime,
            notifier: notifier,
            board: board,
            logger: logger
        )
        let control: ControlServer
        do {
            control = try await ControlServer.open(
                path: configuration.daemon.controlSocket, group: group,
                responder: DaemonControl(runtime: runtime, reloader: reloader, board: board,
                                         configPath: launch.options.configPath),
                logger: logger)
            try launch.pidFile?.publish()
        } catch {
            return startupFailed("\(error)")
        }

        var services: [any Service] = [
            StatusReporter(board: board, notifier: notifier,
                           sinkProblems: { [sinks = runtime.sinks] in sinks.snapshot().compactMap(\.problem) })
        ]
        if let metricsService { services.insert(metricsService, at: 0) }  // first up, last down
        if let interval = SystemdNotifier.watchdogInterval() {
            services.append(WatchdogService(group: group, notifier: notifier, interval: interval, logger: logger))
        }
        services.append(control)
        services.append(ClockWatchService(upstreams: runtime.upstreams, environment: launch.environment, logger: logger))
        DescriptorReserve.process.fill()
        services.append(DescriptorWatchService(loop: group.next(), logger: logger))
        services += runtime.services
        var groupConfiguration = ServiceGroupConfiguration(services: services, logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.daemon.shutdownTimeout
        // No `maximumCancellationDuration`: when it runs out, ServiceGroup calls fatalError (a crash, a core
        // dump and a "failed" unit for what is only a slow exit). `ShutdownDeadline` bounds the exit instead.
        let serviceGroup = ServiceGroup(configuration: groupConfiguration)
        let deadline = ShutdownDeadline(
            limit: configuration.daemon.shutdownTimeout + ShutdownDeadline.cancellationGrace, logger: logger,
            forcedExit: forcedExit)

        notifier.ready(status: DaemonStatusBoard.line(board.snapshot))
        launch.readiness?.ready()
        logger.notice("wsrelay started", metadata: [
            "pid": "\(getpid())",
            "config": "\(launch.options.configPath)",
            "upstreams": "\(configuration.upstreams.count)",
            "sinks": "\(configuration.sinks.count)",
            "malloc": "\(launch.malloc.summary)",
        ])

        let handling = makeSignalHandling(serviceGroup: serviceGroup, reloader: reloader, deadline: deadline)
        var exitCode = DaemonExitCode.success
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await handling.run(signals) }
            tasks.addTask { await deadline.run() }
            tasks.addTask { [stopping, notifier] in
                await Self.extendStopWhileDraining(stopping: stopping, notifier: notifier, sinks: runtime.sinks)
            }
            do {
                try await serviceGroup.run()
            } catch {
                logger.error("shutdown did not complete cleanly", metadata: ["error": "\(error)"])
                exitCode = .failure
            }
            tasks.cancelAll()
        }
        board.finish()
        if fdStore.isHandingOver {
            runtime.counterHandover.save(stateDir: configuration.daemon.stateDir, logger: logger)
        }
        fdStore.flush()
        if fdStore.failedSends > 0 {
            logger.warning("systemd refused \(fdStore.failedSends) file descriptor store request(s); those subscribers reconnect after a restart")
        }
        notifier.flush()
        launch.pidFile?.remove()
        logger.notice("wsrelay stopped", metadata: ["exit_status": "\(exitCode.rawValue)"])
        return exitCode.rawValue
    }

    /// From the start of a shutdown until the task is cancelled (the service group finished): every second,
    /// asks systemd for more stop time while the sinks' queues are still shrinking (`StopTimeoutExtension`).
    private static func extendStopWhileDraining(
        stopping: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation),
        notifier: SystemdNotifier, sinks: SinkSet
    ) async {
        guard notifier.isEnabled else { return }
        var started = false
        for await _ in stopping.stream {
            started = true
            break
        }
        guard started else { return }
        var extender = StopTimeoutExtension()
        while !Task.isCancelled {
            let remaining = sinks.snapshot().reduce(0) { $0 + $1.bufferedBytes }
            if let more = extender.observe(remaining: remaining) { notifier.extendTimeout(by: more) }
            try? await Task.sleep(for: extender.interval)
        }
    }

    private func startupFailed(_ message: String) -> Int32 {
        logger.critical("startup failed: \(message)")
        launch.readiness?.failed(message, code: .failure)
        if launch.readiness == nil, launch.logDestination == .journal {
            // Under systemd the journal has it; also say it on stderr for `systemctl status`.
            StandardError.write("wsrelay: startup failed: \(message)")
        }
        launch.pidFile?.remove()
        return DaemonExitCode.failure.rawValue
    }

    private func makeSignalHandling(serviceGroup: ServiceGroup, reloader: ConfigReloader,
                                    deadline: ShutdownDeadline) -> SignalHandling {
        let notifier = self.notifier
        let logger = self.logger
        let forcedExit = self.forcedExit
        let fdStore = self.fdStore
        let stopping = self.stopping.continuation
        return SignalHandling(
            onShutdown: { signal in
                logger.notice("shutting down", metadata: ["signal": "\(signal)"])
                fdStore.beginHandover()
                stopping.yield()
                notifier.stopping(status: "Shutting down (\(signal))")
                deadline.start()
                await serviceGroup.triggerGracefulShutdown()
            },
            onForcedExit: { signal in
                logger.warning("second \(signal): exiting at once")
                forcedExit.exitNow(code: .failure)
            },
            onReload: { _ = await reloader.reload() }
        )
    }
}

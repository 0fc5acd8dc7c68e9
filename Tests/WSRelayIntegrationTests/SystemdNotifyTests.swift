import Foundation
import Testing
import WSRelayTestSupport

/// The sd_notify contract, observed on a real datagram socket as systemd would see it.
@Suite("systemd notify protocol", .mayBlock)
struct SystemdNotifyTests {
    @Test("READY=1 with STATUS=, then STOPPING=1 on SIGTERM, then exit 0 — in that order")
    func readyStatusStopping() throws {
        let dir = try TemporaryDirectory()
        let notify = try NotifySocket(directory: dir)
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let daemon = try WSRelayProcess(["run", "--config", config], directory: dir,
                                        environment: ["NOTIFY_SOCKET": notify.path])

        let startup = notify.receive(until: { $0.notifyFields["READY"] == "1" })
        let ready = try #require(startup.last, "no READY=1; stderr: \(daemon.stderr)")
        #expect(ready.notifyFields["READY"] == "1")
        #expect(ready.notifyFields["STATUS"]?.contains("upstreams") == true, "STATUS= missing: \(ready)")

        daemon.signal(SIGTERM)
        let stopping = notify.receive(until: { $0.notifyFields["STOPPING"] == "1" })
        #expect(stopping.last?.notifyFields["STOPPING"] == "1", "got \(stopping)")
        #expect(daemon.waitForExit() == 0, "stderr: \(daemon.stderr)")
    }

    @Test("WATCHDOG=1 keeps coming while the event loops run")
    func watchdogPings() throws {
        let dir = try TemporaryDirectory()
        let notify = try NotifySocket(directory: dir)
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let daemon = try WSRelayProcess(["run", "--config", config], directory: dir,
                                        environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        var pings = 0
        _ = notify.receive(until: { message in
            if message.notifyFields["WATCHDOG"] == "1" { pings += 1 }
            return pings >= 3
        })
        #expect(pings >= 3, "stderr: \(daemon.stderr)")
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
    }

    @Test("SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1; a broken new config keeps the old one running")
    func reloadWithBrokenConfig() throws {
        let dir = try TemporaryDirectory()
        let notify = try NotifySocket(directory: dir)
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let daemon = try WSRelayProcess(["run", "--config", config], directory: dir,
                                        environment: ["NOTIFY_SOCKET": notify.path])
        _ = notify.receive(until: { $0.notifyFields["READY"] == "1" })

        // Break the file: a wrong type and an unknown key.
        try dir.write("wsrelay.toml", TestConfig.minimal(dir) + "\n[metrics]\nlisten = 5\nbogus = 1\n")
        daemon.signal(SIGHUP)
        let reload = notify.receive(until: { $0.notifyFields["READY"] == "1" })
        let reloading = try #require(reload.first(where: { $0.notifyFields["RELOADING"] == "1" }), "got \(reload)")
        #expect(UInt64(reloading.notifyFields["MONOTONIC_USEC"] ?? "") != nil)
        #expect(reload.last?.notifyFields["READY"] == "1")
        #expect(processIsAlive(daemon.pid))
        #expect(eventually { daemon.stderr.contains("reload rejected") })
        #expect(daemon.stderr.contains("metrics.listen"), "error should name the key path: \(daemon.stderr)")
        #expect(daemon.stderr.contains("metrics.bogus"))

        // A valid change is then accepted: debug logging switches on.
        try dir.write("wsrelay.toml", TestConfig.minimal(dir).replacingOccurrences(of: "log_level = \"info\"", with: "log_level = \"debug\""))
        daemon.signal(SIGHUP)
        _ = notify.receive(until: { $0.notifyFields["READY"] == "1" })
        #expect(eventually { daemon.stderr.contains("configuration reloaded") })

        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0, "stderr: \(daemon.stderr)")
    }
}

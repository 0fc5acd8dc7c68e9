import Foundation
import Testing
import WSRelayTestSupport

/// `--daemon` and the PID file, with real forks, real locks and real signals.
@Suite("classic daemon and PID file", .mayBlock)
struct ClassicDaemonTests {
    @Test("launcher exits 0 once ready; PID file names the daemon; a second instance is refused; SIGTERM removes the file")
    func daemonLifecycle() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir, extra: "[[sink]]\ntype = \"stdout\"\n"))
        let pidPath = dir.file("wsrelay.pid")

        let launch = try WSRelayProcess.run(["run", "--daemon", "--config", config, "--pid-file", pidPath],
                                            directory: dir, name: "launcher")
        #expect(launch.status == 0, "launcher stderr: \(launch.stderr)")
        let text = try #require(dir.read("wsrelay.pid"), "no PID file")
        let pid = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(text.hasSuffix("\n"))
        #expect(processIsAlive(pid))
        defer { if processIsAlive(pid) { kill(pid, SIGKILL) } }

        let second = try WSRelayProcess.run(["run", "--daemon", "--config", config, "--pid-file", pidPath],
                                            directory: dir, name: "second")
        #expect(second.status != 0)
        #expect(second.stderr.contains("already running as PID \(pid)"), "got: \(second.stderr)")
        // The foreground mode honours the same lock.
        let third = try WSRelayProcess.run(["run", "--config", config, "--pid-file", pidPath], directory: dir, name: "third")
        #expect(third.status != 0)
        #expect(third.stderr.contains("PID \(pid)"))
        #expect(dir.read("wsrelay.pid") == text, "a refused instance must not touch the PID file")

        kill(pid, SIGTERM)
        #expect(eventually { !processIsAlive(pid) }, "daemon did not exit on SIGTERM")
        #expect(!FileManager.default.fileExists(atPath: pidPath), "PID file left behind")
    }

    @Test("a stale PID file (nobody holds its lock) is taken over")
    func stalePIDFile() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let pidPath = try dir.write("wsrelay.pid", "999999\n")

        let launch = try WSRelayProcess.run(["run", "--daemon", "--config", config, "--pid-file", pidPath],
                                            directory: dir, name: "launcher")
        #expect(launch.status == 0, "launcher stderr: \(launch.stderr)")
        let pid = try #require(Int32((dir.read("wsrelay.pid") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(pid != 999999)
        #expect(processIsAlive(pid))
        kill(pid, SIGTERM)
        #expect(eventually { !processIsAlive(pid) })
        #expect(!FileManager.default.fileExists(atPath: pidPath))
    }

    @Test("a daemon that cannot start reports why through the launcher and exits non-zero")
    func startupFailureReachesLauncher() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let pidPath = dir.file("missing-dir/wsrelay.pid")
        let launch = try WSRelayProcess.run(["run", "--daemon", "--config", config, "--pid-file", pidPath],
                                            directory: dir, name: "launcher")
        #expect(launch.status != 0)
        #expect(launch.stderr.contains("missing-dir/wsrelay.pid"), "got: \(launch.stderr)")
    }

    @Test("--daemon with a bad config exits 78 from the launcher, before forking")
    func badConfigDaemon() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", "[[upstream]]\nname = \"x\"\nurl = \"http://nope\"\n")
        let launch = try WSRelayProcess.run(["run", "--daemon", "--config", config, "--pid-file", dir.file("p.pid")],
                                            directory: dir, name: "launcher")
        #expect(launch.status == 78)
        #expect(launch.stderr.contains("upstream[0].url"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("p.pid")))
    }
}

import Foundation
import Testing
import WSRelayTestSupport

/// The daemon sets its malloc thresholds at start (MallocTuning), says so in its start line, and leaves
/// an operator's own malloc settings alone.
@Suite("malloc tuning in the daemon", .mayBlock, .timeLimit(.minutes(1)))
struct MallocTuningDaemonTests {
    func startLine(environment: [String: String]) throws -> String {
        let dir = try TemporaryDirectory()
        let daemon = try RunningDaemon(config: TestConfig.minimal(dir), in: dir, environment: environment)
        #expect(daemon.stop() == 0, "\(daemon.log)")
        return try #require(daemon.log.split(separator: "\n").first { $0.contains("wsrelay started") }.map(String.init),
                            "no start line: \(daemon.log)")
    }

    @Test("by default the start line says the thresholds were set")
    func setByDefault() throws {
        let line = try startLine(environment: [:])
        #expect(line.contains("malloc=thresholds set (mmap 4 MiB, trim 32 MiB)"), "\(line)")
    }

    @Test("glibc.malloc tunables or a MALLOC_* variable in the environment win")
    func environmentWins() throws {
        let tunables = try startLine(environment: ["GLIBC_TUNABLES": "glibc.malloc.perturb=0"])
        #expect(tunables.contains("malloc=left to GLIBC_TUNABLES"), "\(tunables)")
        let variable = try startLine(environment: ["MALLOC_ARENA_MAX": "4"])
        #expect(variable.contains("malloc=left to MALLOC_ARENA_MAX"), "\(variable)")
    }
}

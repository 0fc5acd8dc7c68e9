import Foundation
import Testing
import WSRelayTestSupport

/// The README's first command: `wsrelay demo` must work with no config and no network and tell the story.
@Suite("wsrelay demo", .mayBlock, .timeLimit(.minutes(1)))
struct DemoTests {
    @Test("runs to the end, exit 0, narrating the refresh, the reconnect and the clean exit")
    func demoRuns() throws {
        let dir = try TemporaryDirectory()
        let result = try WSRelayProcess.run(["demo"], directory: dir)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for step in ["1. wsrelay started", "3. the upstream closed the connection: 4001", "token endpoint requests: 2",
                     "epochs 1 → 2", "5. no message lost", "exit status 0", "Files: "] {
            #expect(result.stdout.contains(step), "missing \(step) in:\n\(result.stdout)")
        }
    }
}

import Foundation
import Testing
import WSRelayTestSupport

/// The shipped unit files, checked by systemd's own tools (no systemd is booted).
@Suite("systemd unit files", .mayBlock)
struct SystemdUnitTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try ChildProcess.run(["/usr/bin/systemd-analyze"] + arguments)
        return (result.status ?? -1, result.output)
    }

    /// A copy of the unit whose ExecStart points at the binary under test, so `verify` can check it exists.
    static func unitCopy(_ name: String, as copyName: String, in dir: TemporaryDirectory) throws -> String {
        let text = try String(contentsOf: root.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/wsrelay", with: WSRelayProcess.binaryPath)
        return try dir.write(copyName, text)
    }

    @Test("systemd-analyze verify accepts the units", arguments: [("wsrelay.service", "wsrelay.service"),
                                                                ("wsrelay@.service", "wsrelay@test.service")])
    func verify(_ unit: String, _ copyName: String) throws {
        let dir = try TemporaryDirectory()
        let path = try Self.unitCopy(unit, as: copyName, in: dir)
        let result = try Self.run(["verify", path])
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains(copyName), "warnings about the unit: \(result.output)")
    }

    @Test("systemd-analyze verify accepts the socket unit next to its service")
    func verifySocket() throws {
        let dir = try TemporaryDirectory()
        _ = try Self.unitCopy("wsrelay.service", as: "wsrelay.service", in: dir)
        let socket = try Self.unitCopy("wsrelay.socket", as: "wsrelay.socket", in: dir)
        let result = try Self.run(["verify", socket])
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("wsrelay.socket"), "warnings about the unit: \(result.output)")
        let text = try String(contentsOfFile: socket, encoding: .utf8)
        #expect(text.contains("FileDescriptorName="), "wsrelay finds the socket by name")
    }

    @Test("security exposure is below 2.0", arguments: ["wsrelay.service", "wsrelay@.service"])
    func exposure(_ unit: String) throws {
        let result = try Self.run(["security", "--offline=true", Self.root.appendingPathComponent("systemd/\(unit)").path])
        let line = try #require(result.output.split(separator: "\n").last(where: { $0.contains("Overall exposure level") }),
                                "no exposure line: \(result.output)")
        let words = line.split(separator: " ")
        let index = try #require(words.firstIndex(where: { $0.hasSuffix(":") && $0.contains("service") }))
        let score = try #require(Double(words[words.index(after: index)]))
        #expect(score < 2.0, "\(line)")
    }

    @Test("the service is Type=notify with a watchdog, restarts on failure but not on a config error (78)")
    func essentials() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("systemd/wsrelay.service"), encoding: .utf8)
        for line in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=78",
                     "ExecReload=", "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                     "RestrictAddressFamilies=", "SystemCallFilter=", "StateDirectory=", "RuntimeDirectory=",
                     "LogsDirectory=", "LimitNOFILE=", "FileDescriptorStoreMax=", "Environment=FDSTORE="] {
            #expect(text.contains(line), "missing \(line)")
        }
    }
}

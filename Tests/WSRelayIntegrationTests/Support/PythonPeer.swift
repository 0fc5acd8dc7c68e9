import Foundation
import WSRelayTestSupport

/// A Python helper from Tests/Peers as a child process: the independent WebSocket server (`ws_server.py`,
/// Python `websockets`) or the CONNECT proxy (`connect_proxy.py`). Each prints JSON event lines, the first
/// being `{"event": "listening", "port": N}`.
final class PythonPeer {
    private let process: Process
    let port: Int
    private let output: FileHandle
    private let outputPath: String

    private init(process: Process, port: Int, outputPath: String, output: FileHandle) {
        self.process = process
        self.port = port
        self.outputPath = outputPath
        self.output = output
    }

    static var python: String {
        ProcessInfo.processInfo.environment["WSRELAY_TEST_PYTHON"] ?? "\(root)/.venv-test/bin/python"
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static func start(script: String = "ws_server.py") throws -> PythonPeer {
        let path = "/tmp/wsrelay-pypeer-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = FileHandle(forWritingAtPath: path)!
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["\(root)/Tests/Peers/\(script)"]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        var port: Int?
        _ = eventually {
            let lines = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            port = lines.split(separator: "\n").compactMap { line -> Int? in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      object["event"] as? String == "listening" else { return nil }
                return (object["port"] as? NSNumber)?.intValue
            }.first
            return port != nil
        }
        guard let port else {
            process.terminate()
            throw RunningDaemon.DaemonFailure(message: "python peer did not start: \((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")")
        }
        return PythonPeer(process: process, port: port, outputPath: path, output: handle)
    }

    var events: [[String: Any]] {
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func stop() {
        // SIGKILL: a child spawned from a test thread inherits that thread's blocked signal mask.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

import Foundation
import WSRelayTestSupport

/// A Python helper from Tests/Peers as a child process: the independent WebSocket server (`ws_server.py`,
/// Python `websockets`) or the CONNECT proxy (`connect_proxy.py`). Each prints JSON event lines, the first
/// being `{"event": "listening", "port": N}`.
final class PythonPeer {
    private let process: ChildProcess
    let port: Int
    private let outputPath: String

    private init(process: ChildProcess, port: Int, outputPath: String) {
        self.process = process
        self.port = port
        self.outputPath = outputPath
    }

    static var python: String {
        ProcessInfo.processInfo.environment["WSRELAY_TEST_PYTHON"] ?? "\(root)/.venv-test/bin/python"
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static func start(script: String = "ws_server.py") throws -> PythonPeer {
        let path = "/tmp/wsrelay-pypeer-\(UUID().uuidString).log"
        let process = try ChildProcess([python, "\(root)/Tests/Peers/\(script)"], stdout: path)
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
            process.stop()
            throw RunningDaemon.DaemonFailure(message: "python peer did not start: \((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")")
        }
        return PythonPeer(process: process, port: port, outputPath: path)
    }

    var events: [[String: Any]] {
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

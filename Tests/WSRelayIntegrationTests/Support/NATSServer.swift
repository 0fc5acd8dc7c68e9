import Foundation
import WSRelayTestSupport

/// A real `nats-server` (Debian package) with JetStream on 127.0.0.1, on free ports, its store in a test
/// directory. It can be killed and started again on the same port and store, alone or as one node of a
/// cluster.
final class NATSServer {
    let name: String
    let port: Int
    let monitorPort: Int
    let clusterPort: Int?
    let routes: [Int]
    let storeDirectory: String
    private let directory: TemporaryDirectory
    private let extraArguments: [String]
    private(set) var process: WSRelayProcess?
    private var starts = 0

    static let binary = "/usr/sbin/nats-server"

    var url: String { "nats://127.0.0.1:\(port)" }

    init(name: String = "n1", in directory: TemporaryDirectory, clusterPort: Int? = nil, routes: [Int] = [],
         extraArguments: [String] = [], start: Bool = true) throws {
        self.name = name
        self.directory = directory
        port = MetricsScrape.freePort()
        monitorPort = MetricsScrape.freePort()
        self.clusterPort = clusterPort
        self.routes = routes
        self.extraArguments = extraArguments
        storeDirectory = directory.file("nats-\(name)")
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
        if start { try self.start() }
    }

    /// Starts the server (again) and waits until its monitoring endpoint answers /healthz.
    func start(waitForHealth: Bool = true) throws {
        starts += 1
        var arguments = ["-js", "-sd", storeDirectory, "-a", "127.0.0.1", "-p", "\(port)", "-m", "\(monitorPort)",
                         "-n", name]
        if let clusterPort {
            arguments += ["--cluster_name", "wsrelay-test", "-cluster", "nats://127.0.0.1:\(clusterPort)",
                          "-routes", routes.map { "nats://127.0.0.1:\($0)" }.joined(separator: ",")]
        }
        arguments += extraArguments
        process = try WSRelayProcess(arguments, directory: directory, name: "nats-\(name)-\(starts)",
                                     executable: Self.binary)
        guard waitForHealth else { return }
        let up = eventually(timeout: .seconds(20)) {
            (try? MetricsScrape.get(port: monitorPort, path: "/varz").status) == 200
        }
        if !up { throw RunningDaemon.DaemonFailure(message: "nats-server \(name) did not start: \(process?.stderr ?? "")") }
    }

    func kill(_ signal: Int32 = SIGKILL) {
        guard let process else { return }
        process.signal(signal)
        process.waitForExit(timeout: .seconds(10))
        self.process = nil
    }

    deinit { kill() }

    /// Reads the whole stream with the nats-py consumer; the data of every stored message in order.
    static func readStream(url: String, stream: String, in directory: TemporaryDirectory) throws -> (messages: Int, data: [String]) {
        let out = directory.file("stream-\(UUID().uuidString).txt")
        let reader = try WSRelayProcess(["\(PythonPeer.root)/Tests/Peers/js_read.py", "read", url, stream, out],
                                        directory: directory, name: "js-read", executable: PythonPeer.python)
        // A safety net only: 100,000 messages take a few seconds, more on a loaded machine.
        let status = reader.waitForExit(timeout: .seconds(150))
        let result = (status: status, stdout: reader.stdout, stderr: reader.stderr)
        guard result.status == 0,
              let summary = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
              let messages = (summary["messages"] as? NSNumber)?.intValue
        else {
            throw RunningDaemon.DaemonFailure(message: "js_read.py failed: \(result.stdout) \(result.stderr)")
        }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        return (messages, text.split(separator: "\n").map(String.init))
    }

    /// The server name of the stream's leader (R3 streams).
    static func streamLeader(url: String, stream: String, in directory: TemporaryDirectory) -> String? {
        guard let result = try? WSRelayProcess.runExternal(
            PythonPeer.python, ["\(PythonPeer.root)/Tests/Peers/js_read.py", "leader", url, stream],
            directory: directory, name: "js-leader"),
            let summary = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        else { return nil }
        return summary["leader"] as? String
    }
}

/// What the consumer read, checked the way the JetStream tests need it.
struct StreamContents {
    var lines: [EnvelopeLine]

    init(_ data: [String]) {
        lines = data.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).map(EnvelopeLine.init)
        }
    }

    var messages: [EnvelopeLine] { lines.filter { $0.event == nil } }
    var gaps: [EnvelopeLine] { lines.filter { $0.event == "gap" } }
    /// The simulator's message numbers in stream order.
    var numbers: [Int] { messages.compactMap(\.simulatorNumber) }
    var droppedInGaps: Int { gaps.reduce(0) { $0 + (($1.object["dropped"] as? NSNumber)?.intValue ?? 0) } }
}

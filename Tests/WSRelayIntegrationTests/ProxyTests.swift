import Foundation
import NIOPosix
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// Upstreams behind an HTTP CONNECT proxy (a small Python proxy on 127.0.0.1), chosen from the environment
/// the way curl does, with `no_proxy` exclusions and a clear error when the proxy refuses.
@Suite("HTTP CONNECT proxy", .mayBlock, .timeLimit(.minutes(1)))
struct ProxyTests {
    @Test("http_proxy from the environment tunnels ws://; no_proxy goes direct; a refusing proxy is reported with its status")
    func proxyFromEnvironment() async throws {
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }
        let proxy = try PythonPeer.start(script: "connect_proxy.py")
        defer { proxy.stop() }
        let dir = try TemporaryDirectory()
        let config = """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"

            [[upstream]]
            name = "tunneled"
            url = "ws://127.0.0.1:\(server.port)/tunneled?count=5"

            [[upstream]]
            name = "direct"
            url = "ws://localhost:\(server.port)/direct?count=3"

            [[upstream]]
            name = "refused"
            url = "ws://127.0.0.2:\(server.port)/refused?count=1"
            proxy = "http://127.0.0.1:\(proxy.port)"

            [[sink]]
            type = "file"
            path = "\(dir.file("out.jsonl"))"
            fsync = "never"
            """
        let daemon = try RunningDaemon(config: config, in: dir, environment: [
            "http_proxy": "http://127.0.0.1:\(proxy.port)",
            "no_proxy": "localhost,.example.internal",
        ])
        let lines = { EnvelopeLine.parse(file: dir.file("out.jsonl")) }
        #expect(eventually { lines().filter { $0.upstream == "tunneled" }.count == 5 })
        #expect(eventually { lines().filter { $0.upstream == "direct" }.count == 3 })
        #expect(eventually { daemon.log.contains("proxy refused CONNECT 127.0.0.2:\(server.port): HTTP/1.1 403") }, "\(daemon.log)")
        #expect(daemon.stop() == 0)

        let tunnels = proxy.events.filter { $0["event"] as? String == "connect" }.compactMap { $0["target"] as? String }
        #expect(tunnels.contains("127.0.0.1:\(server.port)"))
        #expect(!tunnels.contains { $0.hasPrefix("localhost") }, "no_proxy host went through the proxy: \(tunnels)")
        #expect(server.recorder.connections.first { $0.path.hasPrefix("/tunneled") }?.header("Host") == "127.0.0.1:\(server.port)")
        #expect(!server.recorder.connections.contains { $0.path.hasPrefix("/refused") })
    }
}

import Foundation
import NIOPosix
import NIOSSL
import Testing
import WSRelaySimulator
import WSRelayTestSupport

/// wss:// against a local TLS server whose certificate comes from a test CA: trusted with `tls.ca_file`,
/// refused without it (system roots do not know the test CA).
@Suite("TLS upstreams", .mayBlock, .timeLimit(.minutes(1)))
struct TLSUpstreamTests {
    @Test("verified with the test CA; refused without it, the verification failure logged")
    func caFileTrustedOtherwiseRefused() async throws {
        let dir = try TemporaryDirectory()
        let certs = try TestCertificates.make(in: dir)
        var options = SimulatorServer.Options()
        options.tls = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certs.serverCert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certs.serverKey, format: .pem))))
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton, options: options)
        defer { Task { await server.stop() } }

        let config = """
            [daemon]
            state_dir = "\(dir.path)"
            control_socket = "\(dir.file("control.sock"))"

            [[upstream]]
            name = "trusted"
            url = "wss://localhost:\(server.port)/trusted?count=3"
            [upstream.tls]
            ca_file = "\(certs.caCert)"

            [[upstream]]
            name = "untrusted"
            url = "wss://localhost:\(server.port)/untrusted?count=3"
            [upstream.reconnect]
            initial = "200ms"

            [[sink]]
            type = "file"
            path = "\(dir.file("out.jsonl"))"
            fsync = "never"
            """
        let daemon = try RunningDaemon(config: config, in: dir)
        #expect(eventually { EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.upstream == "trusted" }.count == 3 })
        #expect(eventually { daemon.log.contains("upstream=untrusted") && daemon.log.lowercased().contains("certificate") },
                "verification failure not logged:\n\(daemon.log)")
        #expect(daemon.stop() == 0)
        #expect(EnvelopeLine.parse(file: dir.file("out.jsonl")).filter { $0.upstream == "untrusted" }.isEmpty)
        #expect(!server.recorder.connections.contains { $0.path.hasPrefix("/untrusted") }, "handshake must fail before HTTP")
        #expect(server.recorder.connections.first { $0.path.hasPrefix("/trusted") }?.header("Host") == "localhost:\(server.port)")
    }
}

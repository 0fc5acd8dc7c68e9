import Foundation
import NIOPosix
import NIOSSL
import Testing
import WSRelayCore
import WSRelaySimulator
import WSRelayTestSupport

/// `wsrelay probe` through the real binary against real local servers (the simulator, a TLS simulator with a
/// test CA, a port nobody listens on). Only 127.0.0.1 / localhost.
@Suite("wsrelay probe", .mayBlock, .timeLimit(.minutes(2)))
struct ProbeTests {
    /// The stage lines of a text report (between the header and the conclusion).
    static func lastLine(_ output: String) -> String {
        output.split(separator: "\n").last.map(String.init) ?? ""
    }

    /// A port that was just free: bound, then closed again, so connecting to it is refused.
    static func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func tlsServer(_ certs: TestCertificates) async throws -> SimulatorServer {
        var options = SimulatorServer.Options()
        options.tls = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certs.serverCert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certs.serverKey, format: .pem))))
        return try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton, options: options)
    }

    @Test("a healthy upstream: exit 0, every stage named, usable")
    func healthy() async throws {
        let dir = try TemporaryDirectory()
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }

        let result = try WSRelayProcess.run(["probe", "\(server.url)/feed?count=3", "--wait", "20s"], directory: dir)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        for stage in ["DNS", "TCP connect", "HTTP upgrade", "first message", "ping"] {
            #expect(result.stdout.contains("  ok    \(stage)"), "stage \(stage) missing or not ok:\n\(result.stdout)")
        }
        #expect(result.stdout.contains("101 Switching Protocols"))
        #expect(result.stdout.contains("(matches the key)"))
        #expect(result.stdout.contains("pong after"))
        #expect(Self.lastLine(result.stdout).hasPrefix("usable"))
        #expect(server.recorder.connections.contains { $0.path.hasPrefix("/feed") })
    }

    @Test("--json prints one parseable report")
    func json() async throws {
        let dir = try TemporaryDirectory()
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }

        let result = try WSRelayProcess.run(["probe", "\(server.url)/feed?count=1", "--json"], directory: dir)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["usable"] as? Bool == true)
        let stages = (object["stages"] as? [[String: Any]] ?? []).compactMap { $0["stage"] as? String }
        #expect(stages == ["dns", "tcp", "upgrade", "message", "ping"])
    }

    @Test("401 on the upgrade: exit 1, the HTTP upgrade named, credentials rejected")
    func unauthorized() async throws {
        let dir = try TemporaryDirectory()
        let server = try await SimulatorServer.start(group: MultiThreadedEventLoopGroup.singleton)
        defer { Task { await server.stop() } }

        let result = try WSRelayProcess.run(["probe", "\(server.url)/feed?status=401"], directory: dir)
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        let last = Self.lastLine(result.stdout)
        #expect(last.hasPrefix("not usable: HTTP upgrade failed"), "\(result.stdout)")
        #expect(last.contains("401"))
        #expect(last.contains("credentials rejected"))
        #expect(!result.stdout.contains("first message"), "the probe stops at the failing stage")
    }

    @Test("a refused port: exit 1, TCP connect named, refused said plainly")
    func refused() throws {
        let dir = try TemporaryDirectory()
        let port = try Self.closedPort()
        let result = try WSRelayProcess.run(["probe", "ws://127.0.0.1:\(port)/feed"], directory: dir)
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        let last = Self.lastLine(result.stdout)
        #expect(last.hasPrefix("not usable: TCP connect failed"), "\(result.stdout)")
        #expect(last.contains("connection refused by 127.0.0.1:\(port)"))
        #expect(result.stdout.contains("  ok    DNS"))
    }

    @Test("a TLS server whose CA is unknown: exit 1, TLS named with the reason; trusted with ca_file by name")
    func unknownCA() async throws {
        let dir = try TemporaryDirectory()
        let certs = try TestCertificates.make(in: dir)
        let server = try await Self.tlsServer(certs)
        defer { Task { await server.stop() } }

        let untrusted = try WSRelayProcess.run(["probe", "wss://localhost:\(server.port)/feed?count=1"], directory: dir, name: "untrusted")
        #expect(untrusted.status == 1, "\(untrusted.stdout)\n\(untrusted.stderr)")
        let last = Self.lastLine(untrusted.stdout)
        #expect(last.hasPrefix("not usable: TLS failed: certificate verification failed: unknown CA"), "\(untrusted.stdout)")
        #expect(last.contains("CN=wsrelay test CA"))
        #expect(untrusted.stdout.contains("CN=localhost"), "the peer certificate's subject is shown")
        #expect(!server.recorder.connections.contains { $0.path.hasPrefix("/feed") }, "no HTTP after a failed handshake")

        let config = try dir.write("wsrelay.toml", """
            [daemon]
            state_dir = "\(dir.path)"

            [[upstream]]
            name = "secure"
            url = "wss://localhost:\(server.port)/secure?count=1"
            [upstream.tls]
            ca_file = "\(certs.caCert)"
            """)
        let trusted = try WSRelayProcess.run(["probe", "secure", "--config", config], directory: dir, name: "trusted")
        #expect(trusted.status == 0, "\(trusted.stdout)\n\(trusted.stderr)")
        #expect(trusted.stdout.contains("certificate verified, SNI localhost"))
        #expect(trusted.stdout.contains("ca_file \(certs.caCert)"))
        #expect(trusted.stdout.contains("notAfter"))
    }

    @Test("a certificate for another name: exit 1, TLS named with hostname mismatch")
    func hostnameMismatch() async throws {
        let dir = try TemporaryDirectory()
        let certs = try TestCertificates.make(in: dir)
        // Re-sign the server key for a name the probe will not use (no IP entry either).
        try dir.write("other.ext", "subjectAltName=DNS:other.example\nbasicConstraints=CA:FALSE\n")
        let other = dir.file("other.pem")
        let signed = try ChildProcess.run(
            ["/usr/bin/openssl", "x509", "-req", "-in", dir.file("server.csr"), "-CA", certs.caCert, "-CAkey",
             dir.file("ca.key"), "-CAcreateserial", "-out", other, "-days", "2", "-extfile", dir.file("other.ext")])
        try #require(signed.status == 0, "\(signed.output)")
        let server = try await Self.tlsServer(TestCertificates(caCert: certs.caCert, serverCert: other, serverKey: certs.serverKey))
        defer { Task { await server.stop() } }

        let config = try dir.write("wsrelay.toml", """
            [daemon]
            state_dir = "\(dir.path)"

            [[upstream]]
            name = "secure"
            url = "wss://localhost:\(server.port)/secure"
            [upstream.tls]
            ca_file = "\(certs.caCert)"
            """)
        let result = try WSRelayProcess.run(["probe", "secure", "--config", config], directory: dir)
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        let last = Self.lastLine(result.stdout)
        #expect(last.hasPrefix("not usable: TLS failed: certificate verification failed: hostname mismatch"), "\(result.stdout)")
        #expect(last.contains("other.example, not localhost"))
    }

    @Test("by name with a static token: the server gets it, the output shows only its fingerprint")
    func staticTokenNeverShown() async throws {
        let dir = try TemporaryDirectory()
        let secret = "probe-s3cr3t-token-7781"
        var options = SimulatorServer.Options()
        options.requiredTokens = [secret]
        // A loop of its own: on the shared singleton, other tests' floods held this probe past its 30 s safety
        // net in a fresh-clone run.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await SimulatorServer.start(group: group, options: options)
        defer { Task { await server.stop(); try? await group.shutdownGracefully() } }
        try dir.write("token", secret + "\n", mode: 0o600)
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir, upstreamURL: "\(server.url)/feed?count=2")
            .replacingOccurrences(of: "name = \"feed\"", with: "name = \"feed\"\nauth = \"main\"")
            + "\n[auth.main]\ntype = \"static\"\ntoken_file = \"\(dir.file("token"))\"\n")

        let result = try WSRelayProcess.run(["probe", "feed", "--config", config], directory: dir)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("  ok    credentials"))
        #expect(result.stdout.contains(SecretFingerprint.of(secret)))
        #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret), "token leaked:\n\(result.stdout)\n\(result.stderr)")
        #expect(server.recorder.connections.contains { $0.path.hasPrefix("/feed") && $0.header("Authorization") == "Bearer \(secret)" })

        let json = try WSRelayProcess.run(["probe", "feed", "--config", config, "--json"], directory: dir, name: "json")
        #expect(json.status == 0)
        #expect(json.stdout.contains(SecretFingerprint.of(secret)) && !json.stdout.contains(secret))
    }

    @Test("usage and config errors: 64 for an unknown name or a bad URL, 78 for a missing config")
    func usageAndConfigErrors() throws {
        let dir = try TemporaryDirectory()
        let config = try dir.write("wsrelay.toml", TestConfig.minimal(dir))
        let unknown = try WSRelayProcess.run(["probe", "fed", "--config", config], directory: dir, name: "unknown")
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("did you mean \"feed\"?"), "\(unknown.stderr)")
        let badURL = try WSRelayProcess.run(["probe", "http://127.0.0.1/"], directory: dir, name: "bad-url")
        #expect(badURL.status == 64)
        let missing = try WSRelayProcess.run(["probe", "feed", "--config", dir.file("absent.toml")], directory: dir, name: "missing")
        #expect(missing.status == 78)
        let badWait = try WSRelayProcess.run(["probe", "ws://127.0.0.1:1/", "--wait", "soon"], directory: dir, name: "bad-wait")
        #expect(badWait.status == 64)
    }
}

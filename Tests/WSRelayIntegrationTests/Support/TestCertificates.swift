import Foundation
import WSRelayTestSupport

/// A throwaway CA and a server certificate for localhost/127.0.0.1 signed by it, made with the openssl CLI
/// in the test's own directory.
struct TestCertificates {
    let caCert: String
    let serverCert: String
    let serverKey: String

    static func make(in dir: TemporaryDirectory) throws -> TestCertificates {
        let ca = dir.file("ca.pem"), caKey = dir.file("ca.key")
        let key = dir.file("server.key"), csr = dir.file("server.csr"), cert = dir.file("server.pem")
        let ext = try dir.write("san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", ca, "-days", "2",
                 "-subj", "/CN=wsrelay test CA"])
        try run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
        try run(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert,
                 "-days", "2", "-extfile", ext])
        return TestCertificates(caCert: ca, serverCert: cert, serverKey: key)
    }

    private static func run(_ arguments: [String]) throws {
        let result = try ChildProcess.run(["/usr/bin/openssl"] + arguments)
        guard result.status == 0 else {
            throw RunningDaemon.DaemonFailure(message: "openssl \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
    }
}

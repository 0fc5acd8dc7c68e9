import NIOSSL

/// Builds the TLS client context for one upstream (or token endpoint) from its settings.
///
/// Built once per settings value and reused for every connection attempt: loading the system trust store for
/// each reconnect would cost more than the handshake itself.
public enum TLSContextFactory {
    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func makeContext(_ settings: TLSSettings) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile = settings.caFile {
            // An explicit CA bundle replaces the system roots: a private PKI should not also trust the world.
            configuration.trustRoots = .file(caFile)
        }
        if let certificate = settings.clientCert, let key = settings.clientKey {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw SetupError(description: "cannot load client certificate \(certificate) / key \(key): \(error)")
            }
        }
        if settings.insecureSkipVerify {
            configuration.certificateVerification = .none
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SetupError(description: "cannot set up TLS (ca_file \(settings.caFile ?? "system roots")): \(error)")
        }
    }

    /// SNI must be a DNS name; for an IP literal none is sent (and the certificate is matched against the
    /// IP address by NIOSSL).
    public static func serverNameIndication(host: String, override: String?) -> String? {
        let name = override ?? host
        let isIPv4 = name.split(separator: ".").count == 4 && name.allSatisfy { $0.isNumber || $0 == "." }
        return (isIPv4 || name.contains(":")) ? nil : name
    }
}

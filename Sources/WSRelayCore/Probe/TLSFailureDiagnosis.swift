/// Names the reason a TLS handshake failed, the way `openssl s_client` would make an operator dig for it.
///
/// BoringSSL reports every chain problem as the same CERTIFICATE_VERIFY_FAILED; the reason is recovered
/// from the certificate the server presented (kept by the probe even though verification failed): expired,
/// not yet valid, self-signed, or issued by a CA the trust store (ca_file or the system roots) does not
/// contain. A name mismatch is reported by NIOSSL separately, after the chain checked out.
public struct TLSFailureDiagnosis: Sendable, Equatable {
    public enum Cause: String, Sendable, Equatable {
        case hostnameMismatch = "hostname mismatch"
        case expired
        case notYetValid = "not yet valid"
        case selfSigned = "self-signed"
        case unknownCA = "unknown CA"
        case unverified = "verification failed"
        case notTLS = "not TLS"
        case clientCertificate = "client certificate"
        case closed
        case other
    }

    public var cause: Cause
    /// One line: the reason, in plain words.
    public var reason: String
    /// More findings about the same certificate (a second problem is worth knowing before fixing the first).
    public var notes: [String]

    /// - Parameters:
    ///   - error: the handshake error as NIOSSL describes it.
    ///   - hostnameFailure: NIOSSL's "failed to validate hostname" error.
    ///   - certificate: the peer's leaf certificate, when it was received.
    ///   - expectedName: the name (or IP) the certificate must carry.
    ///   - trust: "ca_file /path" or "the system trust store".
    public static func diagnose(error: String, hostnameFailure: Bool, certificate: CertificateSummary?,
                                expectedName: String, trust: String, now: WallClockTime) -> TLSFailureDiagnosis {
        let names = certificate.map { $0.names.isEmpty ? "no names" : $0.names.joined(separator: ", ") } ?? "unknown names"
        if hostnameFailure {
            return TLSFailureDiagnosis(
                cause: .hostnameMismatch,
                reason: "hostname mismatch: the certificate is for \(names), not \(expectedName) (set tls.server_name if the server is reached under another name)",
                notes: [])
        }
        let upper = error.uppercased()
        if upper.contains("CERTIFICATE_VERIFY_FAILED") {
            guard let certificate else {
                return TLSFailureDiagnosis(cause: .unverified, reason: "certificate verification failed (the server's certificate was not available to say why)", notes: [])
            }
            var notes: [String] = []
            if !certificate.matches(host: expectedName) {
                notes.append("the certificate also does not name \(expectedName) (it is for \(names))")
            }
            if now > certificate.notAfter {
                return TLSFailureDiagnosis(cause: .expired, reason: "certificate expired at \(certificate.notAfter.rfc3339)", notes: notes)
            }
            if now < certificate.notBefore {
                return TLSFailureDiagnosis(cause: .notYetValid, reason: "certificate not valid before \(certificate.notBefore.rfc3339) (check this machine's clock)", notes: notes)
            }
            if certificate.isSelfIssued {
                return TLSFailureDiagnosis(cause: .selfSigned, reason: "self-signed certificate (\(certificate.subject)), not trusted by \(trust)", notes: notes)
            }
            return TLSFailureDiagnosis(
                cause: .unknownCA,
                reason: "unknown CA: the issuer \"\(certificate.issuer)\" is not trusted by \(trust) (wrong ca_file, or the server does not send its intermediate certificate)",
                notes: notes)
        }
        if upper.contains("WRONG_VERSION_NUMBER") || upper.contains("PACKET_LENGTH_TOO_LONG") || upper.contains("HTTP_REQUEST") {
            return TLSFailureDiagnosis(cause: .notTLS, reason: "the server does not speak TLS on this port (plain HTTP? then use ws://)", notes: [])
        }
        if upper.contains("CERTIFICATE_REQUIRED") || upper.contains("ALERT_BAD_CERTIFICATE") || upper.contains("ALERT_UNKNOWN_CA") {
            return TLSFailureDiagnosis(cause: .clientCertificate, reason: "the server refused our client certificate, or wants one (tls.client_cert / client_key)", notes: [])
        }
        if upper.contains("EOFDURINGHANDSHAKE") || upper.contains("UNCLEANSHUTDOWN") {
            return TLSFailureDiagnosis(cause: .closed, reason: "the server closed the connection during the TLS handshake (SNI not accepted, a client certificate required, or not a TLS port)", notes: [])
        }
        return TLSFailureDiagnosis(cause: .other, reason: "TLS handshake failed: \(error)", notes: [])
    }

    /// NIOSSL's error without the BoringSSL source location: `CERTIFICATE_VERIFY_FAILED (BoringSSL)`.
    public static func shortError(_ error: String) -> String {
        guard let marker = error.firstRange(of: "OPENSSL_internal:") else { return error }
        let rest = error[marker.upperBound...]
        let code = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        return code.isEmpty ? error : "\(code) (BoringSSL)"
    }
}

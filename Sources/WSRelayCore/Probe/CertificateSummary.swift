import Glibc
import NIOSSL

/// What the probe shows of a peer certificate, as plain values (so a diagnosis can be tested without TLS).
public struct CertificateSummary: Sendable, Equatable {
    /// `CN=localhost, O=Example`.
    public var subject: String
    public var issuer: String
    public var notBefore: WallClockTime
    public var notAfter: WallClockTime
    /// DNS names from subjectAltName.
    public var dnsNames: [String]
    /// IP addresses from subjectAltName.
    public var ipAddresses: [String]
    /// The subject's common name, used for name matching only when there are no subjectAltNames.
    public var commonName: String?

    public init(subject: String, issuer: String, notBefore: WallClockTime, notAfter: WallClockTime,
                dnsNames: [String] = [], ipAddresses: [String] = [], commonName: String? = nil) {
        self.subject = subject
        self.issuer = issuer
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.dnsNames = dnsNames
        self.ipAddresses = ipAddresses
        self.commonName = commonName
    }

    public init(_ certificate: NIOSSLCertificate) {
        let subjectNames = certificate.subjectName
        subject = Self.format(subjectNames)
        issuer = Self.format(certificate.issuerName)
        commonName = subjectNames.last { $0.type == .commonName }?.value
        notBefore = WallClockTime(microsecondsSinceEpoch: Int64(certificate.notValidBefore) * 1_000_000)
        notAfter = WallClockTime(microsecondsSinceEpoch: Int64(certificate.notValidAfter) * 1_000_000)
        var dns: [String] = []
        var ips: [String] = []
        for name in certificate._subjectAlternativeNames() {
            let bytes = Array(name.contents)
            if name.nameType == .dnsName {
                dns.append(String(decoding: bytes, as: UTF8.self))
            } else if name.nameType == .ipAddress, let text = Self.ipString(bytes) {
                ips.append(text)
            }
        }
        dnsNames = dns
        ipAddresses = ips
    }

    /// Self-issued: subject and issuer are the same name (a self-signed certificate or a root).
    public var isSelfIssued: Bool { subject == issuer }

    /// The names the certificate is valid for, as shown to the operator.
    public var names: [String] {
        let all = dnsNames + ipAddresses
        return all.isEmpty ? commonName.map { [$0] } ?? [] : all
    }

    /// Whether the certificate names `host` (RFC 6125: exact, or a `*.` wildcard for exactly one label; IP
    /// addresses only against IP entries; the common name only when there are no subjectAltNames).
    public func matches(host: String) -> Bool {
        let host = host.lowercased()
        if host.contains(":") || (host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." }) {
            let wanted = Self.normalizedIP(host)
            return ipAddresses.contains { Self.normalizedIP($0) == wanted }
        }
        let candidates = (dnsNames.isEmpty && ipAddresses.isEmpty) ? (commonName.map { [$0] } ?? []) : dnsNames
        return candidates.contains { pattern in
            let pattern = pattern.lowercased()
            if pattern == host { return true }
            guard pattern.hasPrefix("*."), let dot = host.firstIndex(of: ".") else { return false }
            return host[dot...] == pattern.dropFirst() && host[..<dot].count > 0
        }
    }

    static func format(_ names: [SSLCertificateName]) -> String {
        names.map { name in
            let key: String
            switch name.type {
            case .commonName: key = "CN"
            case .organization: key = "O"
            case .organizationalUnit: key = "OU"
            case .country: key = "C"
            case .state: key = "ST"
            case .city: key = "L"
            case .emailAddress: key = "emailAddress"
            case .userId: key = "UID"
            default: key = "?"
            }
            return "\(key)=\(name.value)"
        }.joined(separator: ", ")
    }

    static func ipString(_ bytes: [UInt8]) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var out = [CChar](repeating: 0, count: 64)
        let ok = bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { inet_ntop(family, raw.baseAddress, $0.baseAddress, socklen_t($0.count)) != nil }
        }
        return ok ? String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    /// An IP literal in canonical form, for comparison (`::1` and `0:0::1` are the same address).
    static func normalizedIP(_ text: String) -> String {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { ipString(Array($0)) } ?? text }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { ipString(Array($0)) } ?? text }
        return text
    }
}

import Crypto

/// The only form in which a secret may be shown: enough to tell two tokens apart in logs and status, never
/// enough to use one. First 8 hex digits of SHA-256.
public enum SecretFingerprint {
    public static func of(_ secret: String) -> String {
        of(Array(secret.utf8))
    }

    public static func of(_ bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: bytes)
        return "sha256:" + digest.prefix(4).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}

import Foundation

/// Reads the `exp` claim of a JWT without verifying it: only to know when to refresh, never to trust it.
///
/// A token that is not three dot-separated base64url parts, whose payload is not a JSON object, or that has
/// no numeric `exp`, has an unknown expiry (`nil`).
enum JWTExpiry {
    static func expiry(ofToken token: String) -> WallClockTime? {
        guard let payload = payload(ofToken: token),
              let exp = TokenJSON.number(payload["exp"])
        else { return nil }
        return WallClockTime.seconds(exp)
    }

    /// The decoded middle part, when the token looks like a JWS compact serialization.
    static func payload(ofToken token: String) -> [String: Any]? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[1].isEmpty, let bytes = base64URLDecode(parts[1]) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }

    /// base64url without padding (RFC 7515 §2); padding is accepted too.
    static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var standard = String(text).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.hasSuffix("=") { standard.removeLast() }
        switch standard.utf8.count % 4 {
        case 1: return nil
        case 2: standard += "=="
        case 3: standard += "="
        default: break
        }
        guard let data = Data(base64Encoded: standard) else { return nil }
        return Array(data)
    }
}

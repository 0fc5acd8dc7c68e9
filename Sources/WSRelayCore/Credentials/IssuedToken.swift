/// An access token handed to one connection attempt.
///
/// `value` is the secret itself: it goes into that attempt's handshake request and nowhere else. Every textual
/// form of an `IssuedToken` (`description`, `debugDescription`, `dump`, string interpolation) shows the
/// fingerprint instead, so logging one by accident leaks nothing.
public struct IssuedToken: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The secret. Never log it.
    public let value: String
    /// `SecretFingerprint.of(value)`.
    public let fingerprint: String
    /// Increases by one with every token the credential obtains (starting at 1). A connection attempt that
    /// is refused passes it back as `rejected:` so that only a rejection of the *current* token refreshes.
    public let generation: UInt64
    /// When the token stops being valid, if known (expires_in / expires_at, or a JWT's `exp`).
    public let expiresAt: WallClockTime?

    public init(value: String, generation: UInt64, expiresAt: WallClockTime?) {
        self.value = value
        self.fingerprint = SecretFingerprint.of(value)
        self.generation = generation
        self.expiresAt = expiresAt
    }

    public var description: String {
        "token \(fingerprint) (generation \(generation), expires \(expiresAt?.rfc3339 ?? "unknown"))"
    }

    public var debugDescription: String { "IssuedToken(\(description))" }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "fingerprint": fingerprint, "generation": generation,
                "expiresAt": expiresAt?.rfc3339 ?? "unknown",
            ],
            displayStyle: .struct
        )
    }
}

/// What a provider obtained: a new access token, when it expires, and (for oauth2 / http_json) whether the
/// endpoint rotated the refresh token (already persisted by the provider by the time this is returned).
struct TokenGrant: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    var accessToken: String
    var expiresAt: WallClockTime?

    init(accessToken: String, expiresAt: WallClockTime?) {
        self.accessToken = accessToken
        self.expiresAt = expiresAt
    }

    /// A grant whose expiry is `explicit` when the source said so, otherwise the JWT `exp` claim if the token
    /// is a JWT, otherwise unknown.
    static func resolving(accessToken: String, explicitExpiry: WallClockTime?) -> TokenGrant {
        TokenGrant(accessToken: accessToken, expiresAt: explicitExpiry ?? JWTExpiry.expiry(ofToken: accessToken))
    }

    var description: String {
        "grant \(SecretFingerprint.of(accessToken)) (expires \(expiresAt?.rfc3339 ?? "unknown"))"
    }

    var customMirror: Mirror {
        Mirror(self, children: ["fingerprint": SecretFingerprint.of(accessToken)], displayStyle: .struct)
    }

    /// Tokens go into header values, URLs and JSON: refuse anything empty or containing control characters
    /// (a CR/LF in a token would otherwise let a token source inject headers).
    static func validate(_ token: String, credential: String, source: String) throws(CredentialError) {
        if token.isEmpty {
            throw CredentialError(.invalidResponse, credential: credential, "\(source) gave an empty token")
        }
        if token.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw CredentialError(
                .invalidResponse, credential: credential,
                "\(source) gave a token containing control characters (refused)"
            )
        }
    }
}

extension WallClockTime {
    /// `self + duration`, saturating.
    func adding(_ duration: Duration) -> WallClockTime {
        let (seconds, atto) = duration.components
        let micros = seconds.multipliedReportingOverflow(by: 1_000_000)
        let add = micros.overflow ? (seconds < 0 ? Int64.min : Int64.max) : micros.partialValue &+ atto / 1_000_000_000_000
        let sum = microsecondsSinceEpoch.addingReportingOverflow(add)
        return WallClockTime(microsecondsSinceEpoch: sum.overflow ? (add < 0 ? .min : .max) : sum.partialValue)
    }

    /// `self - other` as a `Duration` (negative when `other` is later).
    func duration(since other: WallClockTime) -> Duration {
        .microseconds(microsecondsSinceEpoch &- other.microsecondsSinceEpoch)
    }

    static func seconds(_ seconds: Double) -> WallClockTime? {
        guard seconds.isFinite, abs(seconds) < 9.0e12 else { return nil }
        return WallClockTime(microsecondsSinceEpoch: Int64((seconds * 1_000_000).rounded()))
    }
}

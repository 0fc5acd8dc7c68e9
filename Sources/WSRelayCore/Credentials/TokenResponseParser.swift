import Foundation
import RegexBuilder

/// Where the fields of a token response live. `oauth2` uses the RFC 6749 names; `http_json` configures them.
/// A name containing dots that is not itself a top-level key is followed as a path (`data.token`).
struct TokenResponseFields: Sendable, Equatable {
    var accessToken = "access_token"
    var expiresIn = "expires_in"
    var expiresAt = "expires_at"
    var refreshToken = "refresh_token"

    static let standard = TokenResponseFields()

    init() {}

    init(_ settings: HTTPJSONSettings) {
        accessToken = settings.tokenField
        expiresIn = settings.expiresInField
        expiresAt = settings.expiresAtField
        refreshToken = settings.refreshTokenField
    }
}

/// A parsed successful token response (also the JSON form of token files and command output).
struct TokenResponse: Sendable, Equatable, CustomStringConvertible {
    var accessToken: String
    /// From `expires_in` (relative to the `issuedAt` given to the parser) or `expires_at`; `nil` if neither.
    var expiresAt: WallClockTime?
    /// A rotated refresh token, if the response carried one.
    var refreshToken: String?

    var grant: TokenGrant { .resolving(accessToken: accessToken, explicitExpiry: expiresAt) }

    var description: String {
        "TokenResponse(access \(SecretFingerprint.of(accessToken)), expires \(expiresAt?.rfc3339 ?? "unknown"), "
            + "refresh \(refreshToken.map { SecretFingerprint.of($0) } ?? "none"))"
    }
}

/// Parses token responses. Errors describe what is missing, never what was there: a body may hold secrets.
enum TokenResponseParser {
    /// Largest body accepted from an endpoint, file or command.
    static let maximumSize = 1 << 20

    static func parse(
        _ bytes: [UInt8], fields: TokenResponseFields = .standard, issuedAt: WallClockTime, credential: String,
        source: String
    ) throws(CredentialError) -> TokenResponse {
        guard let object = TokenJSON.object(bytes) else {
            throw CredentialError(.invalidResponse, credential: credential, "\(source) is not a JSON object")
        }
        guard let token = TokenJSON.lookup(object, fields.accessToken) as? String else {
            throw CredentialError(
                .invalidResponse, credential: credential, "\(source) has no string field \"\(fields.accessToken)\""
            )
        }
        try TokenGrant.validate(token, credential: credential, source: source)

        var expiresAt: WallClockTime? = nil
        if let raw = TokenJSON.lookup(object, fields.expiresIn), !(raw is NSNull) {
            guard let seconds = TokenJSON.number(raw) ?? (raw as? String).flatMap({ Double($0) }), seconds.isFinite,
                  seconds > -1e9, seconds < 1e11
            else {
                throw CredentialError(
                    .invalidResponse, credential: credential,
                    "\(source): \"\(fields.expiresIn)\" is not a number of seconds"
                )
            }
            expiresAt = issuedAt.adding(.microseconds(Int64(seconds * 1_000_000)))
        } else if let raw = TokenJSON.lookup(object, fields.expiresAt), !(raw is NSNull) {
            guard let at = expiry(absolute: raw) else {
                throw CredentialError(
                    .invalidResponse, credential: credential,
                    "\(source): \"\(fields.expiresAt)\" is neither Unix seconds nor an RFC 3339 time"
                )
            }
            expiresAt = at
        }

        var refresh: String? = nil
        if let raw = TokenJSON.lookup(object, fields.refreshToken), !(raw is NSNull) {
            guard let value = raw as? String else {
                throw CredentialError(
                    .invalidResponse, credential: credential,
                    "\(source): \"\(fields.refreshToken)\" is not a string"
                )
            }
            if !value.isEmpty {
                try TokenGrant.validate(value, credential: credential, source: source + " (refresh token)")
                refresh = value
            }
        }
        return TokenResponse(accessToken: token, expiresAt: expiresAt, refreshToken: refresh)
    }

    /// `expires_at`: Unix seconds (number or numeric string; values above 10^11 are taken as milliseconds)
    /// or an RFC 3339 timestamp.
    static func expiry(absolute raw: Any) -> WallClockTime? {
        if let number = TokenJSON.number(raw) ?? (raw as? String).flatMap({ Double($0) }) {
            return WallClockTime.seconds(number > 1e11 ? number / 1000 : number)
        }
        if let text = raw as? String { return RFC3339.parse(text) }
        return nil
    }

    /// The OAuth error of an error response (RFC 6749 §5.2): `error`, and `error_description` only when it is
    /// safe to show (short, printable, none of `secrets`, and no long token-like run of characters).
    static func oauthError(_ bytes: [UInt8], secrets: [String]) -> (error: String?, description: String?) {
        guard let object = TokenJSON.object(bytes) else { return (nil, nil) }
        var code = (object["error"] as? String).flatMap(safeCode)
        if code == nil, let nested = object["error"] as? [String: Any] {
            code = ((nested["code"] as? String) ?? (nested["error"] as? String)).flatMap(safeCode)
        }
        let description = (object["error_description"] as? String).flatMap { safeDescription($0, secrets: secrets) }
        return (code, description)
    }

    /// An OAuth error code is `1*( %x20-21 / %x23-5B / %x5D-7E )`; keep it only if short and plain.
    static func safeCode(_ text: String) -> String? {
        guard (1...64).contains(text.count),
              text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0)) })
        else { return nil }
        return text
    }

    static func safeDescription(_ text: String, secrets: [String]) -> String? {
        guard !text.isEmpty, text.count <= 200 else { return nil }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return nil }
        for secret in secrets where secret.count >= 4 && text.contains(secret) { return nil }
        // Anything that looks like it could be a credential (a long run of token characters) is dropped too.
        var run = 0
        for scalar in text.unicodeScalars {
            if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                || "-_.~+/=".unicodeScalars.contains(scalar)
            {
                run += 1
                if run >= 24 { return nil }
            } else {
                run = 0
            }
        }
        return text
    }
}

/// Small helpers over `JSONSerialization` results.
enum TokenJSON {
    static func object(_ bytes: [UInt8]) -> [String: Any]? {
        guard !bytes.isEmpty, bytes.count <= TokenResponseParser.maximumSize else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) as? [String: Any]
    }

    /// `name` as a top-level key, else as a dot-separated path.
    static func lookup(_ object: [String: Any], _ name: String) -> Any? {
        if let value = object[name] { return value }
        guard name.contains(".") else { return nil }
        var current: Any? = object
        for part in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard let dict = current as? [String: Any] else { return nil }
            current = dict[String(part)]
        }
        return current
    }

    /// A JSON number (not a boolean) as a Double.
    static func number(_ value: Any?) -> Double? {
        guard let value, !(value is String), let n = value as? NSNumber else { return nil }
        // `true`/`false` come back as a boolean subclass of NSNumber; refuse them.
        if type(of: n) == type(of: NSNumber(value: true)) { return nil }
        return n.doubleValue
    }
}

/// RFC 3339 `date-time` (`2026-11-21T10:00:00Z`, `2026-11-21T12:00:00.5+02:00`; `t`/`z` and a space as the
/// separator are accepted, as RFC 3339 §5.6 allows).
///
/// Foundation's `Date.ISO8601FormatStyle` does the parsing; what is added here is what it leaves out: the
/// lower-case letters, the space separator, and matching the whole text (the style alone accepts trailing
/// junk such as `...Zjunk`).
enum RFC3339 {
    static func parse(_ text: String) -> WallClockTime? {
        let upper = text.uppercased()
        guard upper.count > 10 else { return nil }
        let separator: Date.ISO8601FormatStyle.DateTimeSeparator
        switch upper[upper.index(upper.startIndex, offsetBy: 10)] {
        case "T": separator = .standard
        case " ": separator = .space
        default: return nil
        }
        let style = Date.ISO8601FormatStyle(dateTimeSeparator: separator, includingFractionalSeconds: upper.contains("."))
        guard let match = try? Regex({ style }).wholeMatch(in: upper) else { return nil }
        return WallClockTime(microsecondsSinceEpoch: Int64((match.output.timeIntervalSince1970 * 1_000_000).rounded()))
    }
}

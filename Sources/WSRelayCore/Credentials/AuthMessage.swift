/// `placement = "message"`: the token is sent as the first text message after the upgrade.
public enum AuthMessage {
    /// `template` with every `{token}` replaced by the token, JSON-string-escaped (quotes, backslashes,
    /// control characters, U+2028/U+2029), so a template like `{"type":"auth","token":"{token}"}` stays
    /// valid JSON whatever the token contains. The template supplies the surrounding quotes.
    public static func render(template: String, token: String) -> String {
        template.replacing("{token}", with: jsonEscaped(token))
    }

    /// Whether a reply acknowledges the authentication. `okPattern` is a plain substring (not a regular
    /// expression), matched case-sensitively anywhere in the reply; an empty pattern matches every reply.
    public static func matches(reply: String, okPattern: String) -> Bool {
        okPattern.isEmpty || reply.contains(okPattern)
    }

    /// The contents of a JSON string literal for `text` (without the quotes).
    public static func jsonEscaped(_ text: String) -> String {
        JSONStringEscaper.escaped(text)
    }
}

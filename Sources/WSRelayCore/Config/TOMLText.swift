/// Writing TOML syntax: quoted strings and keys.
enum TOMLText {
    /// A TOML basic string literal, with `"`, `\` and control characters escaped.
    static func quoted(_ s: String) -> String {
        "\"" + JSONStringEscaper.escaped(s) + "\""
    }

    /// A key, bare when possible.
    static func key(_ k: String) -> String {
        ConfigKeyPath.isBare(k) ? k : quoted(k)
    }
}

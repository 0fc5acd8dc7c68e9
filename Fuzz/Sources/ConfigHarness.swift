@testable import WSRelayCore

extension FuzzTargets {
    /// TOML text to a configuration or diagnostics, never a crash; a rejected file always says why, and an
    /// accepted one renders (`wsrelay config show`) to TOML that loads back to the same configuration.
    static let config = FuzzTarget(name: "config", summary: "ConfigLoader (TOMLKit + validation), ConfigRenderer") { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        switch ConfigLoader.parse(toml: text, file: "fuzz.toml", environment: [:]) {
        case .success(let loaded):
            let rendered = ConfigRenderer.render(loaded.configuration)
            guard !rendered.contains("<redacted") else { return }  // inline secrets render redacted, by design
            guard case .success(let again) = ConfigLoader.parse(toml: rendered, file: "rendered.toml", environment: [:])
            else { fatalError("fuzz property violated: the rendered configuration does not load:\n\(rendered)") }
            check(again.configuration == loaded.configuration, "the rendered configuration loads differently:\n\(rendered)")
        case .failure(let error):
            check(!error.diagnostics.isEmpty, "a rejected configuration without a diagnostic")
        }
    }
}

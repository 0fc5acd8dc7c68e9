import WSRelayTestSupport
/// Small valid configs for tests, with every path inside the test's own directory.
enum TestConfig {
    static func minimal(_ dir: TemporaryDirectory, upstreamURL: String = "ws://127.0.0.1:9/feed", extra: String = "") -> String {
        """
        [daemon]
        state_dir = "\(dir.path)"
        control_socket = "\(dir.file("control.sock"))"
        log_level = "info"

        [[upstream]]
        name = "feed"
        url = "\(upstreamURL)"

        \(extra)
        """
    }
}

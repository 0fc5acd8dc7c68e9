public enum WSRelayVersion { public static let string = "0.1.0" }

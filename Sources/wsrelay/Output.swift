import WSRelayCore

func printError(_ text: String) {
    StandardError.write(text)
}

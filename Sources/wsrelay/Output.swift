import Foundation

func printError(_ text: String) {
    fputs(text.hasSuffix("\n") ? text : text + "\n", stderr)
}

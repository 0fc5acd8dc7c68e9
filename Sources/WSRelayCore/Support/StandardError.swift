import Glibc

/// Writes straight to file descriptor 2 with `write(2)`: no stdio buffer that a fork could duplicate, and no
/// shared `FILE*` that strict concurrency checking rightly objects to.
public enum StandardError {
    public static func write(_ text: String) {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}

import Glibc

/// What identifies one version of a file: a replaced file (new inode), an edited one (mtime/size) or a
/// re-provisioned systemd credential all compare unequal.
struct FileIdentity: Sendable, Equatable, CustomStringConvertible {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeSeconds: Int64
    var mtimeNanoseconds: Int64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeSeconds = Int64(st.st_mtim.tv_sec)
        mtimeNanoseconds = Int64(st.st_mtim.tv_nsec)
    }

    /// `nil` when the path cannot be stat'ed (missing, no permission).
    static func of(path: String) -> FileIdentity? {
        var st = stat()
        return stat(path, &st) == 0 ? FileIdentity(st) : nil
    }

    var modified: WallClockTime {
        WallClockTime(microsecondsSinceEpoch: mtimeSeconds * 1_000_000 + mtimeNanoseconds / 1_000)
    }

    var description: String { "inode \(inode), \(size) bytes, mtime \(modified.rfc3339)" }
}

/// Remembers the identity of a file seen last time and reports when it changed ("changed since the last
/// look"). The first look only records.
struct FileChangeTracker: Sendable {
    private(set) var path: String
    private var seen: FileIdentity??  // .none: never looked; .some(nil): looked, file missing

    init(path: String) { self.path = path }

    /// Records `identity` as seen (after a read, with the identity of the file actually read).
    mutating func record(_ identity: FileIdentity?) {
        seen = .some(identity)
    }

    /// Stats the file; true if it differs from what was last recorded.
    mutating func checkChanged() -> Bool {
        let now = FileIdentity.of(path: path)
        defer { seen = .some(now) }
        guard case .some(let previous) = seen else { return false }
        return previous != now
    }
}

/// Reads the secret behind a `SecretSource`.
///
/// - `file`: the file's contents; `systemdCredential(NAME)`: `$CREDENTIALS_DIRECTORY/NAME`;
///   `environment(NAME)`: the variable from the environment the store was given; `inline`: the value.
/// - Exactly one trailing newline (`\n` or `\r\n`) is removed, so `echo TOKEN > file` works.
/// - An empty secret is an error, and error messages name the source, never the content.
enum SecretReader {
    static let maximumFileSize = 1 << 20

    struct Secret: Sendable {
        var value: String
        /// The identity of the file read (`nil` for inline and environment sources).
        var file: FileIdentity?
    }

    static func read(_ source: SecretSource, environment: [String: String], credential: String, what: String)
        throws(CredentialError) -> Secret
    {
        switch source {
        case .inline(let value):
            return Secret(value: try nonEmpty(trimmingOneNewline(value), credential, what, "inline value"), file: nil)
        case .environment(let name):
            guard let value = environment[name] else {
                throw CredentialError(
                    .sourceUnavailable, credential: credential, "\(what): environment variable \(name) is not set"
                )
            }
            return Secret(value: try nonEmpty(trimmingOneNewline(value), credential, what, "environment variable \(name)"),
                          file: nil)
        case .file(let path):
            let (bytes, identity) = try readFile(path, credential: credential, what: what)
            return Secret(value: try nonEmpty(decode(bytes), credential, what, path), file: identity)
        case .systemdCredential(let name):
            let path = try credentialPath(name, environment: environment, credential: credential, what: what)
            let (bytes, identity) = try readFile(path, credential: credential, what: what)
            return Secret(value: try nonEmpty(decode(bytes), credential, what, "systemd credential \(name)"),
                          file: identity)
        }
    }

    /// The file behind a source whose changes should be watched, if it has one.
    static func watchedPath(_ source: SecretSource, environment: [String: String]) -> String? {
        switch source {
        case .file(let path): return path
        case .systemdCredential(let name):
            return try? credentialPath(name, environment: environment, credential: "", what: "")
        case .inline, .environment: return nil
        }
    }

    static func credentialPath(_ name: String, environment: [String: String], credential: String, what: String)
        throws(CredentialError) -> String
    {
        guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
            throw CredentialError(
                .sourceUnavailable, credential: credential,
                "\(what): systemd credential \(name) requested but CREDENTIALS_DIRECTORY is not set "
                    + "(LoadCredential=/SetCredential= in the unit)"
            )
        }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func trimmingOneNewline(_ value: String) -> String {
        decode(Array(value.utf8))
    }

    static func decode(_ bytes: [UInt8]) -> String {
        var end = bytes.count
        if end > 0, bytes[end - 1] == UInt8(ascii: "\n") {
            end -= 1
            if end > 0, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    private static func nonEmpty(_ value: String, _ credential: String, _ what: String, _ origin: String)
        throws(CredentialError) -> String
    {
        if value.isEmpty {
            throw CredentialError(.sourceUnavailable, credential: credential, "\(what): \(origin) is empty")
        }
        return value
    }

    /// Reads a whole (small) file, returning the identity of the file actually opened.
    static func readFile(_ path: String, credential: String, what: String) throws(CredentialError)
        -> ([UInt8], FileIdentity)
    {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CredentialError(
                .sourceUnavailable, credential: credential, "\(what): cannot open \(path): \(errnoText(errno))"
            )
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw CredentialError(.sourceUnavailable, credential: credential, "\(what): cannot stat \(path): \(errnoText(errno))")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CredentialError(
                    .sourceUnavailable, credential: credential, "\(what): cannot read \(path): \(errnoText(errno))"
                )
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maximumFileSize {
                throw CredentialError(
                    .sourceUnavailable, credential: credential,
                    "\(what): \(path) is larger than \(maximumFileSize) bytes"
                )
            }
        }
        return (bytes, FileIdentity(st))
    }

    static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}

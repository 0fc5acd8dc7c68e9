import Foundation
import Logging
import NIOConcurrencyHelpers

/// The refresh token of one oauth2 / http_json credential, across rotations and restarts.
///
/// When the endpoint rotates the refresh token, the new one is persisted atomically (temporary file, fsync,
/// rename, directory fsync; mode 0600, directory 0700) at `<stateDir>/credentials/<name>.refresh_token` as
/// a small JSON document `{"refresh_token": ..., "initial_fingerprint": ..., "saved_at": ...}` and used from
/// then on, also after a restart.
///
/// `initial_fingerprint` is the fingerprint of the *configured* refresh token at the time of the rotation.
/// If the configured one differs now, the operator re-provisioned the credential: the configured one wins
/// over the persisted one. If the configured source cannot be read (or none is configured), the persisted
/// one is used.
///
/// A rotated token that cannot be persisted is still used (the old one may already be revoked); the failure
/// is logged as an error, because the next restart would fall back to the old token.
final class RefreshTokenStore: Sendable {
    let credential: String
    let path: String
    private let initial: SecretSource?
    private let environment: [String: String]
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    struct Persisted: Codable, Equatable {
        var refresh_token: String
        var initial_fingerprint: String
        var saved_at: String?
    }

    private struct State {
        var loaded = false
        var persisted: Persisted?
        /// Fingerprint of the configured token last read ("none" when not configured).
        var initialFingerprint: String?
        var tracker: FileChangeTracker?
        var reportedReprovision: String?
    }

    static func path(stateDir: String, credential: String) -> String {
        let base = stateDir.hasSuffix("/") ? String(stateDir.dropLast()) : stateDir
        return "\(base)/credentials/\(credential).refresh_token"
    }

    init(credential: String, stateDir: String, initial: SecretSource?, environment: [String: String], logger: Logger) {
        self.credential = credential
        self.path = Self.path(stateDir: stateDir, credential: credential)
        self.initial = initial
        self.environment = environment
        self.logger = logger
        var state = State()
        state.tracker = initial.flatMap { SecretReader.watchedPath($0, environment: environment) }
            .map(FileChangeTracker.init)
        self.state = NIOLockedValueBox(state)
    }

    /// The refresh token to send now, or `nil` when none is configured or persisted.
    func current() throws(CredentialError) -> String? {
        var configured: String? = nil
        var configuredError: CredentialError? = nil
        if let initial {
            do {
                let secret = try SecretReader.read(initial, environment: environment, credential: credential,
                                                   what: "refresh token")
                configured = secret.value
                if let file = secret.file { state.withLockedValue { $0.tracker?.record(file) } }
            } catch {
                configuredError = error
            }
        }
        let configuredFingerprint = configured.map { SecretFingerprint.of($0) } ?? "none"

        let (persisted, firstLoad) = state.withLockedValue { state -> (Persisted?, Bool) in
            defer { state.loaded = true }
            return (state.persisted, !state.loaded)
        }
        var stored = persisted
        if firstLoad {
            stored = load()
            state.withLockedValue { $0.persisted = stored }
        }

        if let stored {
            if configured == nil {
                if let configuredError {
                    logger.debug("configured refresh token unreadable; using the persisted one", metadata: [
                        "error": "\(configuredError.message)",
                    ])
                }
                state.withLockedValue { $0.initialFingerprint = stored.initial_fingerprint }
                return stored.refresh_token
            }
            if stored.initial_fingerprint == configuredFingerprint {
                state.withLockedValue { $0.initialFingerprint = configuredFingerprint }
                return stored.refresh_token
            }
            // Re-provisioned: the configured token changed since the persisted one was saved.
            let report = state.withLockedValue { state -> Bool in
                state.persisted = nil
                state.initialFingerprint = configuredFingerprint
                defer { state.reportedReprovision = configuredFingerprint }
                return state.reportedReprovision != configuredFingerprint
            }
            if report {
                logger.notice("configured refresh token changed since the last rotation; using the configured one", metadata: [
                    "configured": "\(configuredFingerprint)", "was": "\(stored.initial_fingerprint)",
                ])
            }
            return configured
        }
        state.withLockedValue { $0.initialFingerprint = configuredFingerprint }
        if let configured { return configured }
        if let configuredError { throw configuredError }
        return nil
    }

    /// Adopts a refresh token returned by the endpoint and persists it. Never throws: see the type's doc.
    func rotate(to newToken: String, replacing oldToken: String?) {
        guard newToken != oldToken else { return }
        let record = state.withLockedValue { state -> Persisted in
            let record = Persisted(
                refresh_token: newToken, initial_fingerprint: state.initialFingerprint ?? "none",
                saved_at: WallClockTime.now().rfc3339
            )
            state.persisted = record
            state.loaded = true
            return record
        }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(record)
            try AtomicFile.write(Array(data) + [UInt8(ascii: "\n")], to: path, mode: 0o600)
            logger.info("refresh token rotated and saved", metadata: [
                "refresh_token": "\(SecretFingerprint.of(newToken))", "path": "\(path)",
            ])
        } catch {
            logger.error(
                "refresh token rotated but could not be saved; it is used until restart, after which the old one would be",
                metadata: ["path": "\(path)", "error": "\(error)", "refresh_token": "\(SecretFingerprint.of(newToken))"]
            )
        }
    }

    /// True when the configured refresh-token file changed since the last look (re-provisioning).
    func inputsChanged() -> Bool {
        state.withLockedValue { $0.tracker?.checkChanged() ?? false }
    }

    private func load() -> Persisted? {
        let bytes: [UInt8]
        do {
            (bytes, _) = try SecretReader.readFile(path, credential: credential, what: "saved refresh token")
        } catch {
            if FileIdentity.of(path: path) != nil {
                logger.warning("cannot read the saved refresh token; using the configured one", metadata: [
                    "error": "\(error.message)",
                ])
            }
            return nil
        }
        guard let record = try? JSONDecoder().decode(Persisted.self, from: Data(bytes)), !record.refresh_token.isEmpty
        else {
            logger.warning("saved refresh token file is not valid; using the configured one", metadata: ["path": "\(path)"])
            return nil
        }
        return record
    }
}

/// Whole-file replacement that is atomic and durable: temporary file in the same directory (created 0600 or
/// the given mode, no symlink following), fsync, rename over the target, fsync of the directory. Missing
/// parent directories are created with mode 0700.
enum AtomicFile {
    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws(WriteError) {
        let directory = parent(of: path)
        try makeDirectories(directory)
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw WriteError(description: "cannot create \(temporary): \(errnoText())") }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw WriteError(description: "chmod \(temporary): \(errnoText())") }
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw WriteError(description: "write \(temporary): \(errnoText())")
                }
                offset += n
            }
            guard fsync(fd) == 0 else { throw WriteError(description: "fsync \(temporary): \(errnoText())") }
        }
        guard rename(temporary, path) == 0 else {
            throw WriteError(description: "rename to \(path): \(errnoText())")
        }
        ok = true
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func makeDirectories(_ path: String) throws(WriteError) {
        var st = stat()
        if stat(path, &st) == 0 { return }
        let up = parent(of: path)
        if up != path, up != "/", up != "." { try makeDirectories(up) }
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw WriteError(description: "cannot create directory \(path): \(errnoText())")
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

import NIOConcurrencyHelpers

/// `type = "file"`: a token file kept current by something else (a sidecar, a cron job, an agent).
///
/// The file is re-read whenever its identity (inode, size, mtime) changes, checked on every token request,
/// and whenever a refresh is asked for. With `format = "json"` it holds
/// `{"access_token": "...", "expires_in": N}` or `"expires_at": unix-seconds | RFC 3339`; `expires_in` counts
/// from the file's modification time, since the file may have been written long before it is read.
final class FileTokenProvider: TokenProvider {
    let type = "file"
    private let credential: String
    private let path: String
    private let format: TokenFileFormat
    private let tracker: NIOLockedValueBox<FileChangeTracker>

    init(credential: String, path: String, format: TokenFileFormat) {
        self.credential = credential
        self.path = path
        self.format = format
        self.tracker = NIOLockedValueBox(FileChangeTracker(path: path))
    }

    func fetch() async throws(CredentialError) -> TokenGrant {
        let bytes: [UInt8]
        let identity: FileIdentity
        do {
            (bytes, identity) = try SecretReader.readFile(path, credential: credential, what: "token file")
        } catch {
            tracker.withLockedValue { $0.record(nil) }
            throw error
        }
        tracker.withLockedValue { $0.record(identity) }
        switch format {
        case .text:
            let token = SecretReader.decode(bytes)
            try TokenGrant.validate(token, credential: credential, source: "token file \(path)")
            return .resolving(accessToken: token, explicitExpiry: nil)
        case .json:
            let response = try TokenResponseParser.parse(
                bytes, issuedAt: identity.modified, credential: credential, source: "token file \(path)"
            )
            return response.grant
        }
    }

    func sourceChanged() -> SourceChange? {
        tracker.withLockedValue { $0.checkChanged() } ? .token : nil
    }
}

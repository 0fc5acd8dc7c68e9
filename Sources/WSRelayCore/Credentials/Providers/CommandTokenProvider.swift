import Logging
import NIOPosix

/// `type = "command"`: runs a program (argv, no shell) whose stdout is the token, or the JSON form
/// `{"access_token": ..., "expires_in" | "expires_at": ...}` (detected by a leading `{`).
///
/// The program is killed (with its whole process group) when it exceeds the timeout. Its stderr is the
/// program's own: it is logged at warning, capped at 500 characters (with the token it printed, if it
/// printed it there too, replaced by its fingerprint). A non-zero exit is a failure naming the status.
final class CommandTokenProvider: TokenProvider {
    let type = "command"
    static let stderrLogLimit = 500

    private let credential: String
    private let argv: [String]
    private let timeout: Duration
    private let logger: Logger
    private let now: @Sendable () -> WallClockTime

    init(credential: String, argv: [String], timeout: Duration, logger: Logger,
         now: @escaping @Sendable () -> WallClockTime = { .now() })
    {
        self.credential = credential
        self.argv = argv
        self.timeout = timeout
        self.logger = logger
        self.now = now
    }

    func fetch() async throws(CredentialError) -> TokenGrant {
        let started = now()
        let argv = self.argv
        let timeout = self.timeout
        let result: Result<ProcessRunner.Output, ProcessRunner.SpawnError>
        do {
            result = try await NIOThreadPool.singleton.runIfActive {
                Result { () throws(ProcessRunner.SpawnError) in try ProcessRunner.run(argv: argv, timeout: timeout) }
            }
        } catch {
            throw CredentialError(.commandFailed, credential: credential, "cannot run the token command: \(error)")
        }
        let output: ProcessRunner.Output
        switch result {
        case .success(let o): output = o
        case .failure(let error):
            throw CredentialError(.commandFailed, credential: credential, "token command: \(error.description)")
        }

        let program = argv.first ?? ""
        let stdoutText = SecretReader.decode(output.stdout)
        let trimmed = stdoutText.drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        if !output.stderr.isEmpty {
            logStderr(output.stderr, redacting: stdoutText)
        }
        if output.timedOut {
            throw CredentialError(
                .timedOut, credential: credential,
                "token command \(program) did not finish within \(timeout) and was killed"
            )
        }
        guard output.termination == .exited(0) else {
            throw CredentialError(
                .commandFailed, credential: credential, "token command \(program) failed: \(output.termination)"
            )
        }
        if output.stdoutTruncated {
            throw CredentialError(
                .invalidResponse, credential: credential, "token command \(program) printed more than 1 MiB"
            )
        }
        if trimmed.hasPrefix("{") {
            let response = try TokenResponseParser.parse(
                Array(trimmed.utf8), issuedAt: started, credential: credential, source: "output of \(program)"
            )
            return response.grant
        }
        try TokenGrant.validate(stdoutText, credential: credential, source: "token command \(program)")
        return .resolving(accessToken: stdoutText, explicitExpiry: nil)
    }

    private func logStderr(_ bytes: [UInt8], redacting token: String) {
        var text = String(decoding: bytes, as: UTF8.self)
        if token.count >= 4 { text = text.replacing(token, with: SecretFingerprint.of(token)) }
        if text.hasSuffix("\n") { text.removeLast() }
        if text.count > Self.stderrLogLimit { text = String(text.prefix(Self.stderrLogLimit)) + "…" }
        logger.warning("token command wrote to stderr", metadata: ["stderr": "\(text)"])
    }
}

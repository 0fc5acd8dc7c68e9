import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// The HTTP side of the oauth2 and http_json providers: one lazily created `HTTPClient` per credential
/// (its TLS options are the credential's), sharing the daemon's event loops, redirects disabled (a token
/// request must not be replayed to another host), no silent connection retries, a per-request timeout,
/// http/https only.
final class TokenHTTPClient: Sendable {
    struct Response: Sendable {
        var status: Int
        var body: [UInt8]
    }

    private enum State {
        case idle
        case running(HTTPClient)
        case shutDown
    }

    private let group: any EventLoopGroup
    private let tls: TLSSettings
    private let timeout: Duration
    private let credential: String
    private let state = NIOLockedValueBox(State.idle)

    init(group: any EventLoopGroup, tls: TLSSettings, timeout: Duration, credential: String) {
        self.group = group
        self.tls = tls
        self.timeout = timeout
        self.credential = credential
    }

    /// POSTs `body`; any status comes back as a `Response`, transport problems as errors.
    func post(url: String, headers: [(String, String)], body: [UInt8]) async throws(CredentialError) -> Response {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            throw CredentialError(.misconfigured, credential: credential, "token URL must be http:// or https://")
        }
        let client = try obtainClient()
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let timeout = self.timeout
        let prepared = request
        let amount = TimeAmount.nanoseconds(timeout.nonNegativeNanosecondsClamped)
        do {
            return try await Self.withTimeout(timeout) {
                let response = try await client.execute(prepared, deadline: .now() + amount)
                let buffer = try await response.body.collect(upTo: TokenResponseParser.maximumSize)
                return Response(status: Int(response.status.code), body: Array(buffer.readableBytesView))
            }
        } catch {
            throw map(error, url: Self.display(url))
        }
    }

    func shutdown() async {
        let client = state.withLockedValue { state -> HTTPClient? in
            defer { state = .shutDown }
            if case .running(let client) = state { return client }
            return nil
        }
        try? await client?.shutdown()
    }

    /// A store released without `shutdown()` still closes its client (asynchronously) instead of tripping
    /// AsyncHTTPClient's "not shut down before deinit" check.
    deinit {
        if case .running(let client) = state.withLockedValue({ $0 }) {
            _ = client.shutdown() as EventLoopFuture<Void>
        }
    }

    private func obtainClient() throws(CredentialError) -> HTTPClient {
        let result = state.withLockedValue { state -> Result<HTTPClient, CredentialError> in
            switch state {
            case .running(let client):
                return .success(client)
            case .shutDown:
                return .failure(CredentialError(.shutdown, credential: credential, "credential store is shut down"))
            case .idle:
                let tlsConfiguration: TLSConfiguration
                do {
                    tlsConfiguration = try Self.tlsConfiguration(tls)
                } catch {
                    return .failure(CredentialError(.misconfigured, credential: credential, "\(error)"))
                }
                let amount = TimeAmount.nanoseconds(timeout.nonNegativeNanosecondsClamped)
                var configuration = HTTPClient.Configuration(
                    tlsConfiguration: tlsConfiguration,
                    redirectConfiguration: .disallow,
                    timeout: .init(connect: amount, read: amount)
                )
                configuration.httpVersion = .http1Only
                // A refused connection fails the refresh at once: the credential's own backoff (retry_initial ..
                // retry_max) decides when to try again, rather than AHC retrying silently until the timeout.
                configuration.connectionPool.retryConnectionEstablishment = false
                let client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
                state = .running(client)
                return .success(client)
            }
        }
        return try result.get()
    }

    private func map(_ error: any Error, url: String) -> CredentialError {
        if let error = error as? CredentialError { return error }
        if error is TimeoutError || (error as? HTTPClientError) == .deadlineExceeded
            || (error as? HTTPClientError) == .readTimeout || (error as? HTTPClientError) == .connectTimeout
        {
            return CredentialError(.timedOut, credential: credential, "token endpoint \(url) did not answer within \(timeout)")
        }
        if error is CancellationError || (error as? HTTPClientError) == .cancelled {
            return CredentialError(.cancelled, credential: credential, "token request cancelled")
        }
        if (error as? HTTPClientError) == .alreadyShutdown {
            return CredentialError(.shutdown, credential: credential, "credential store is shut down")
        }
        if error is NIOTooManyBytesError {
            return CredentialError(.invalidResponse, credential: credential, "token endpoint \(url) answered with more than 1 MiB")
        }
        return CredentialError(.endpointUnreachable, credential: credential, "token endpoint \(url): \(error)")
    }

    /// The response of a non-2xx answer as an error: HTTP status and OAuth `error`; 400/401 or
    /// `invalid_grant` are permanent (`grantRejected`), anything else transient. `secrets` are the values sent,
    /// so an `error_description` echoing one of them is dropped.
    static func failure(status: Int, body: [UInt8], url: String, credential: String, secrets: [String])
        -> CredentialError
    {
        let (code, description) = TokenResponseParser.oauthError(body, secrets: secrets)
        var message = "token endpoint \(display(url)) answered HTTP \(status)"
        if let code { message += " (\(code))" }
        if let description { message += ": \(description)" }
        let permanent = status == 400 || status == 401 || code == "invalid_grant"
        return CredentialError(
            permanent ? .grantRejected : .endpointError, credential: credential, message, httpStatus: status,
            oauthError: code
        )
    }

    /// The URL as shown in errors and logs: without user information and without the query (either may
    /// carry a credential).
    static func display(_ url: String) -> String {
        var text = url
        if let query = text.firstIndex(where: { $0 == "?" || $0 == "#" }) { text = String(text[..<query]) }
        guard let schemeEnd = text.firstRange(of: "://") else { return text }
        let authorityStart = schemeEnd.upperBound
        let authorityEnd = text[authorityStart...].firstIndex(of: "/") ?? text.endIndex
        if let at = text[authorityStart..<authorityEnd].lastIndex(of: "@") {
            text.removeSubrange(authorityStart...at)
        }
        return text
    }

    /// TLS options of `[auth.NAME.tls]` (the same meaning as an upstream's; `server_name` has no equivalent
    /// in the HTTP client and is not applied).
    static func tlsConfiguration(_ settings: TLSSettings) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile = settings.caFile { configuration.trustRoots = .file(caFile) }
        if let certificate = settings.clientCert, let key = settings.clientKey {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw TLSContextFactory.SetupError(
                    description: "cannot load client certificate \(certificate) / key \(key): \(error)"
                )
            }
        }
        if settings.insecureSkipVerify { configuration.certificateVerification = .none }
        return configuration
    }

    struct TimeoutError: Error {}

    /// Runs `operation`, cancelling it when `timeout` passes first.
    static func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T)
        async throws -> T
    {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw TimeoutError() }
            return value
        }
    }
}

/// `application/x-www-form-urlencoded` (RFC 6749 appendix B): everything but unreserved characters is
/// percent-encoded.
enum FormEncoding {
    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(component($0.0))=\(component($0.1))" }.joined(separator: "&")
    }

    static func component(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
            {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }
}

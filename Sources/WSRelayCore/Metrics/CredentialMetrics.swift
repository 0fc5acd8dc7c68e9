import Metrics

/// The refresh counters of one `[auth.NAME]`, one per outcome, made up front so every outcome is exported
/// from 0 (a `rate()` over a series that appears only at its first failure misses that failure).
public final class CredentialMetrics: Sendable {
    /// The same three kinds `CredentialStatus.RefreshCounts` counts.
    public enum Outcome: String, CaseIterable, Sendable {
        /// The refresh produced a token.
        case success
        /// A transient failure (unreachable, 5xx, timeout, command failure, ...); retried with backoff.
        case failure
        /// The token endpoint refused the grant (invalid_grant, 400, 401): the credential is `failed`.
        case rejected
    }

    public let credential: String
    private let success: Counter
    private let failure: Counter
    private let rejected: Counter

    /// Counters that record nothing (metrics off).
    public static let disabled = CredentialMetrics(credential: "", factory: NOOPMetricsHandler.instance)

    init(credential: String, factory: any MetricsFactory) {
        self.credential = credential
        func counter(_ outcome: Outcome) -> Counter {
            Counter(label: RelayMetricFamily.credentialRefreshes.name,
                    dimensions: [("credential", credential), ("outcome", outcome.rawValue)], factory: factory)
        }
        success = counter(.success)
        failure = counter(.failure)
        rejected = counter(.rejected)
    }

    func refreshed(_ outcome: Outcome) {
        switch outcome {
        case .success: success.increment()
        case .failure: failure.increment()
        case .rejected: rejected.increment()
        }
    }

    /// The outcome a failed refresh counts as.
    static func outcome(of error: CredentialError) -> Outcome {
        error.isPermanent ? .rejected : .failure
    }
}

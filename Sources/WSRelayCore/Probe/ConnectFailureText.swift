import Glibc
import NIOCore

/// Plain words for a failed TCP connect: refused, timed out, unreachable, each with what it usually means.
enum ConnectFailureText {
    /// Short form for one address tried ("connection refused").
    static func short(_ error: any Error) -> String {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return "timed out" }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
        return UpstreamConnection.describe(error)
    }

    /// The stage's summary for the first failing address (`address` as "127.0.0.1:9").
    static func explain(_ error: any Error, address: String, timeout: Duration) -> String {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            return "no answer from \(address) within \(DurationParser.format(timeout)) (timeout: a firewall dropping packets, or the host is down)"
        }
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED:
                return "connection refused by \(address): nothing is listening there (server down, or listening on another address or port)"
            case ETIMEDOUT:
                return "no answer from \(address) (timeout: a firewall dropping packets, or the host is down)"
            case ENETUNREACH, EHOSTUNREACH:
                return "no route to \(address) (\(short(error)))"
            case ECONNRESET:
                return "connection reset by \(address)"
            default:
                break
            }
        }
        return "connect to \(address) failed: \(short(error))"
    }
}

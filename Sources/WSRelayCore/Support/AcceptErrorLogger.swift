import Logging
import NIOCore

/// Sits on a listening channel and names each failed `accept` in one log line — above all EMFILE/ENFILE
/// when the process is out of descriptors, which NIO otherwise handles silently (its `AcceptBackoffHandler`
/// stops accepting for a second and tries again). So an operator sees "cannot accept a subscriber: Too many
/// open files", at most about once a second per listener, and the daemon carries on.
final class AcceptErrorLogger: ChannelInboundHandler, Sendable {
    typealias InboundIn = any Channel

    private let label: String
    private let logger: Logger

    init(label: String, logger: Logger) {
        self.label = label
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason: String
        if let error = error as? IOError {
            reason = SystemError.describe(error.errnoCode)
        } else {
            reason = "\(error)"
        }
        logger.error("\(label): cannot accept a connection: \(reason); the waiting peer stays queued and is accepted once descriptors are free")
        context.fireErrorCaught(error)
    }
}

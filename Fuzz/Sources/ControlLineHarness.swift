@testable import WSRelayCore

extension FuzzTargets {
    /// The control socket: a byte stream framed into lines (`LineFramer`), each line parsed as a request.
    /// A request that parses must survive its own wire form unchanged.
    static let controlLine = FuzzTarget(name: "control-line", summary: "LineFramer + ControlRequest") { bytes in
        var framer = LineFramer(maximumLength: 4096)
        _ = framer.append(bytes) { line in
            switch ControlRequest.parse(line) {
            case .success(let request):
                check(ControlRequest.parse(Array(request.line.utf8)) == .success(request),
                      "\(request) does not round-trip through \(request.line)")
            case .failure(let error):
                check(!error.description.isEmpty, "empty error")
            }
        }
    }

    /// A subscriber's request lines (`{"subscribe":[...]}`), each parsed and answered as the socket would.
    static let subscribeLine = FuzzTarget(name: "subscribe-line", summary: "SubscribeRequest (subscribe and send lines)") { bytes in
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            switch SubscribeRequest.parse(line) {
            case .success(.subscribe(let names)):
                check(Set(names).count == names.count, "duplicate names in \(names)")
                let reply = SubscribeRequest.okLine(upstreams: names)
                check(reply.last == UInt8(ascii: "\n") && !reply.dropLast().contains(UInt8(ascii: "\n")),
                      "reply is not one line")
            case .success(.send(let request)):
                // The same send as a control request must survive that wire form too.
                let line = ControlRequest.send(request).line
                check(ControlRequest.parse(Array(line.utf8)) == .success(.send(request)),
                      "\(request) does not round-trip through \(line)")
            case .failure(let failure):
                let reply = SubscribeRequest.errorLine(failure.description)
                check(!reply.dropLast().contains(UInt8(ascii: "\n")), "error reply is not one line")
            }
        }
    }
}

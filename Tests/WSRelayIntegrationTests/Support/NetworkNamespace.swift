import Foundation

/// A network namespace of the test's own, joined to the host by a veth pair: a link the test can take down
/// without closing anything (no FIN, no RST: a dead link, as when a cable or a NAT entry dies). Needs root.
/// Names are unique per test run; `deinit` deletes the namespace (which deletes both veth ends) and stops
/// every process the test started in it.
final class NetworkNamespace {
    let name: String
    let hostInterface: String
    let innerInterface: String
    let hostAddress: String
    let innerAddress: String
    private var processes: [ChildProcess] = []

    static var available: Bool { geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") }

    init() throws {
        let tag = String(UInt32.random(in: 0..<0xFFFFFF), radix: 16)
        name = "wsrt-\(getpid())-\(tag)"
        hostInterface = "wsrh\(tag)"
        innerInterface = "wsrn\(tag)"
        // A /30 of its own in 10.213.0.0/16, picked at random (the namespace is private; only the host route
        // is shared, and it goes when the namespace does).
        let subnet = Int.random(in: 0..<16384) * 4
        hostAddress = "10.213.\(subnet / 256).\(subnet % 256 + 1)"
        innerAddress = "10.213.\(subnet / 256).\(subnet % 256 + 2)"
        try Self.ip(["netns", "add", name])
        do {
            try Self.ip(["link", "add", hostInterface, "type", "veth", "peer", "name", innerInterface])
            try Self.ip(["link", "set", innerInterface, "netns", name])
            try Self.ip(["addr", "add", "\(hostAddress)/30", "dev", hostInterface])
            try Self.ip(["link", "set", hostInterface, "up"])
            try inside(["ip", "link", "set", "lo", "up"])
            try inside(["ip", "addr", "add", "\(innerAddress)/30", "dev", innerInterface])
            try inside(["ip", "link", "set", innerInterface, "up"])
        } catch {
            cleanUp()
            throw error
        }
    }

    /// Takes the namespace's end of the link down or up: packets stop (or flow again) both ways.
    func setLink(up: Bool) throws {
        try inside(["ip", "link", "set", innerInterface, up ? "up" : "down"])
    }

    /// Starts a long-running program inside the namespace; stopped (SIGKILL) by `deinit`.
    func start(_ arguments: [String], output: String) throws -> ChildProcess {
        let process = try ChildProcess(["/usr/sbin/ip", "netns", "exec", name] + arguments, stdout: output)
        processes.append(process)
        return process
    }

    private func inside(_ arguments: [String]) throws {
        try Self.ip(["netns", "exec", name] + arguments)
    }

    @discardableResult
    private static func ip(_ arguments: [String]) throws -> String {
        let result = try ChildProcess.run(["/usr/sbin/ip"] + arguments)
        guard result.status == 0 else {
            throw Failure(description: "ip \(arguments.joined(separator: " ")): \(result.output)")
        }
        return result.output
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    private func cleanUp() {
        for process in processes { process.stop() }
        processes.removeAll()
        _ = try? Self.ip(["netns", "del", name])
        _ = try? Self.ip(["link", "del", hostInterface])  // normally gone with the namespace
    }

    deinit { cleanUp() }
}

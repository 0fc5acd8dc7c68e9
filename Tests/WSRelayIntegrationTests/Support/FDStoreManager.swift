import Foundation
import WSRelayTestSupport

/// Plays systemd's part of the file descriptor store protocol for a test: a real AF_UNIX datagram socket as
/// NOTIFY_SOCKET that receives the daemon's `FDSTORE=1`/`FDNAME=` datagrams with their descriptors
/// (SCM_RIGHTS), keeps the descriptors, honours `FDSTOREREMOVE=1`, and starts the next process with the kept
/// descriptors as `LISTEN_FDS` (at 3, 4, ...), `LISTEN_FDNAMES` and its own `LISTEN_PID`, as systemd does on
/// a restart.
final class FDStoreManager: @unchecked Sendable {
    let path: String
    private let condition = NSCondition()
    private var messages: [String] = []
    /// Kept descriptors in the order they were stored (systemd passes them in that order).
    private var stored: [(name: String, fd: Int32)] = []
    private var stopped = false

    init(directory: TemporaryDirectory) throws {
        path = directory.file("notify.sock")
        let fd = try RawUnixSocket.bind(path, datagram: true)
        Thread { [self] in readLoop(fd) }.start()
    }

    deinit {
        for (_, fd) in stored { close(fd) }
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.unlock()
    }

    var names: [String] {
        condition.lock()
        defer { condition.unlock() }
        return stored.map(\.name)
    }

    var received: [String] {
        condition.lock()
        defer { condition.unlock() }
        return messages
    }

    private func readLoop(_ fd: Int32) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 1024)
        while true {
            condition.lock()
            let stop = stopped
            condition.unlock()
            if stop { return }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) == 1 else { continue }
            var descriptors: [Int32] = []
            let n = buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { controlBytes -> Int in
                    var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var header = msghdr()
                        header.msg_iov = vectorPointer
                        header.msg_iovlen = 1
                        header.msg_control = controlBytes.baseAddress
                        header.msg_controllen = controlBytes.count
                        let n = recvmsg(fd, &header, Int32(MSG_CMSG_CLOEXEC))
                        guard n >= 0 else { return n }
                        descriptors = Self.rights(controlBytes, length: Int(header.msg_controllen))
                        return n
                    }
                }
            }
            guard n >= 0 else { continue }
            handle(String(decoding: buffer[0..<n], as: UTF8.self), descriptors: descriptors)
        }
    }

    /// The descriptors of the SCM_RIGHTS control messages (struct cmsghdr: size_t len, int level, int type,
    /// then the data aligned to size_t).
    private static func rights(_ control: UnsafeMutableRawBufferPointer, length: Int) -> [Int32] {
        var result: [Int32] = []
        let headerSize = MemoryLayout<Int>.size + 8
        var offset = 0
        while offset + headerSize <= length {
            let cmsgLength = control.load(fromByteOffset: offset, as: Int.self)
            let level = control.load(fromByteOffset: offset + MemoryLayout<Int>.size, as: Int32.self)
            let type = control.load(fromByteOffset: offset + MemoryLayout<Int>.size + 4, as: Int32.self)
            guard cmsgLength >= headerSize else { break }
            if level == SOL_SOCKET, type == Int32(SCM_RIGHTS) {
                let count = (cmsgLength - headerSize) / 4
                for i in 0..<count {
                    result.append(control.load(fromByteOffset: offset + headerSize + 4 * i, as: Int32.self))
                }
            }
            offset += (cmsgLength + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1)
        }
        return result
    }

    private func handle(_ message: String, descriptors: [Int32]) {
        var fields: [String: String] = [:]
        for line in message.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        condition.lock()
        defer {
            condition.signal()
            condition.unlock()
        }
        messages.append(message)
        if fields["FDSTORE"] == "1" {
            let name = fields["FDNAME"] ?? "stored"
            for fd in descriptors { stored.append((name, fd)) }
            return
        }
        for fd in descriptors { close(fd) }  // systemd ignores descriptors sent without FDSTORE=1
        if fields["FDSTOREREMOVE"] == "1", let name = fields["FDNAME"] {
            for entry in stored where entry.name == name { close(entry.fd) }
            stored.removeAll { $0.name == name }
        }
    }

    /// Waits (bounded) until `condition` holds for the received messages and kept names.
    func wait(timeout: Duration = .seconds(20), until test: (_ messages: [String], _ names: [String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        condition.lock()
        defer { condition.unlock() }
        while !test(messages, stored.map(\.name)) {
            if !condition.wait(until: deadline) { return test(messages, stored.map(\.name)) }
        }
        return true
    }

    /// Starts `wsrelay ARGUMENTS` with NOTIFY_SOCKET and FDSTORE set and the kept descriptors passed as
    /// LISTEN_FDS, through `/bin/sh` so that LISTEN_PID is the daemon's own pid (exec keeps it).
    func start(_ arguments: [String], directory: TemporaryDirectory, name: String, capacity: Int = 64) throws -> WSRelayProcess {
        condition.lock()
        let passing = stored
        condition.unlock()
        var environment = ["NOTIFY_SOCKET": path, "FDSTORE": "\(capacity)"]
        if !passing.isEmpty {
            environment["LISTEN_FDS"] = "\(passing.count)"
            environment["LISTEN_FDNAMES"] = passing.map(\.name).joined(separator: ":")
        }
        let script = passing.isEmpty ? "exec \"$@\"" : "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\""
        return try WSRelayProcess(["-c", script, "sh", WSRelayProcess.binaryPath] + arguments, directory: directory,
                                  environment: environment, name: name, executable: "/bin/sh",
                                  passing: passing.map(\.fd))
    }
}

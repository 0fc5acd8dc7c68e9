import Glibc
import NIOCore
import NIOPosix

/// DNS for the probe: `getaddrinfo` (the system resolver, as everything else on the machine uses), run on a
/// thread pool because it blocks. Addresses come back in the resolver's preference order, without duplicates.
public enum AddressResolver {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func resolve(host: String, port: Int) async -> Result<[SocketAddress], Failure> {
        do {
            return try await NIOThreadPool.singleton.runIfActive { lookup(host: host, port: port) }
        } catch {
            return .failure(Failure(description: "cannot resolve \(host): \(error)"))
        }
    }

    static func lookup(host: String, port: Int) -> Result<[SocketAddress], Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            let text = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
            return .failure(Failure(description: "cannot resolve \(host): \(text.lowercased())"))
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var seen: Set<String> = []
        var entry = list
        while let info = entry {
            entry = info.pointee.ai_next
            guard let sockaddr = info.pointee.ai_addr else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(sockaddr, info.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0
            else { continue }
            let ip = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard seen.insert(ip).inserted, let address = try? SocketAddress(ipAddress: ip, port: port) else { continue }
            addresses.append(address)
        }
        if addresses.isEmpty { return .failure(Failure(description: "\(host) has no IPv4 or IPv6 address")) }
        return .success(addresses)
    }
}

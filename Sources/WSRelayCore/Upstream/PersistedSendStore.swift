import Foundation
import Logging
import NIOConcurrencyHelpers

/// The messages local programs sent with `"persist": true`, per upstream: sent after the configured
/// `subscribe` list on every connect, kept across reloads (it is not configuration) and restarts.
///
/// Kept at `<state_dir>/sends.json` as `{"upstreams":{"NAME":[{"text":"..."},{"binary":"BASE64"}]}}`, replaced
/// atomically and durably (`AtomicFile`, mode 0600) on every change, so a crash never leaves half a list.
/// The same message is kept once per upstream. An entry for an upstream no longer configured stays (a
/// reload may bring it back) and can be removed with `wsrelay unsend`.
public final class PersistedSendStore: Sendable {
    public let path: String
    private let lists: NIOLockedValueBox<[String: [OutgoingMessage]]>
    private let logger: Logger

    struct File: Codable {
        struct Entry: Codable {
            var text: String?
            var binary: String?
        }
        var upstreams: [String: [Entry]]
    }

    public static func path(stateDir: String) -> String {
        (stateDir.hasSuffix("/") ? String(stateDir.dropLast()) : stateDir) + "/sends.json"
    }

    /// Loads the file if there is one. An unreadable or invalid file is logged and treated as empty (it is
    /// replaced at the next change), so a damaged file never keeps the daemon from starting.
    public init(stateDir: String, logger: Logger) {
        self.path = Self.path(stateDir: stateDir)
        self.logger = logger
        self.lists = NIOLockedValueBox(Self.load(path, logger: logger))
    }

    /// The persisted messages of `upstream`, in the order they were added.
    public func messages(for upstream: String) -> [OutgoingMessage] {
        lists.withLockedValue { $0[upstream] ?? [] }
    }

    public var all: [String: [OutgoingMessage]] { lists.withLockedValue { $0 } }

    /// Adds `message` (kept once) and saves; throws `UpstreamSendRefusal`. Blocking (fsync): call off the event loops.
    public func add(_ message: OutgoingMessage, for upstream: String) throws {
        try lists.withLockedValue { lists in
            var list = lists[upstream] ?? []
            if list.contains(message) { return }
            guard list.count < UpstreamSend.maximumPersisted else {
                throw UpstreamSendRefusal.persistedListFull(name: upstream, limit: UpstreamSend.maximumPersisted)
            }
            list.append(message)
            var next = lists
            next[upstream] = list
            try save(next)
            lists = next
        }
        logger.notice("persisted a message for every connect", metadata: ["upstream": "\(upstream)", "bytes": "\(message.size)"])
    }

    /// Removes `message` from `upstream`'s list and saves; false when it was not there. Throws
    /// `UpstreamSendRefusal`.
    public func remove(_ message: OutgoingMessage, for upstream: String) throws -> Bool {
        try lists.withLockedValue { lists -> Bool in
            guard var list = lists[upstream], let index = list.firstIndex(of: message) else { return false }
            list.remove(at: index)
            var next = lists
            next[upstream] = list.isEmpty ? nil : list
            try save(next)
            lists = next
            return true
        }
    }

    private func save(_ lists: [String: [OutgoingMessage]]) throws(UpstreamSendRefusal) {
        let file = File(upstreams: lists.mapValues { list in
            list.map { message in
                switch message {
                case .text(let text): return File.Entry(text: text)
                case .binary(let bytes): return File.Entry(binary: Base64.encode(bytes))
                }
            }
        })
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(file)
            try AtomicFile.write(Array(data) + [UInt8(ascii: "\n")], to: path, mode: 0o600)
        } catch {
            throw .persistFailed("\(path): \(error)")
        }
    }

    private static func load(_ path: String, logger: Logger) -> [String: [OutgoingMessage]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        guard let file = try? JSONDecoder().decode(File.self, from: data) else {
            logger.error("persisted sends file is not valid; starting with none (it is replaced at the next change)",
                         metadata: ["path": "\(path)"])
            return [:]
        }
        var lists: [String: [OutgoingMessage]] = [:]
        for (name, entries) in file.upstreams {
            lists[name] = entries.compactMap { entry in
                if let text = entry.text { return .text(text) }
                if let binary = entry.binary, let bytes = Base64.decode(binary.utf8) { return .binary(bytes) }
                logger.warning("persisted sends: skipped an entry that is neither text nor base64 binary",
                               metadata: ["path": "\(path)", "upstream": "\(name)"])
                return nil
            }
        }
        return lists
    }
}

import Foundation
import Logging

/// Each upstream's `epoch` and `seq` handed from a process that stops with the file descriptor store in use
/// to the next one, so that subscribers kept across the restart see both keep growing: `(upstream, epoch,
/// seq)` stays unique, and the `restarted` line names the epoch each upstream's next connection will carry.
///
/// Written at the end of a handover to `<state_dir>/handover.json`, read and deleted at the next start (a
/// later crash must not reuse it). After a crash there is none: the counters start again at 1, and the
/// `restarted` line has no `epochs`.
public struct CounterHandover: Codable, Sendable, Equatable {
    public struct Counters: Codable, Sendable, Equatable {
        public var epoch: UInt64
        public var seq: UInt64
    }

    public var upstreams: [String: Counters]

    public static func path(stateDir: String) -> String {
        (stateDir.hasSuffix("/") ? String(stateDir.dropLast()) : stateDir) + "/handover.json"
    }

    /// Reads and removes the file; nil when there is none or it is unreadable (logged).
    public static func take(stateDir: String, logger: Logger) -> CounterHandover? {
        let path = path(stateDir: stateDir)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        unlink(path)
        guard let handover = try? JSONDecoder().decode(CounterHandover.self, from: data) else {
            logger.warning("handover counters are not valid; epoch and seq start again at 1", metadata: ["path": "\(path)"])
            return nil
        }
        return handover
    }

    public func save(stateDir: String, logger: Logger) {
        let path = Self.path(stateDir: stateDir)
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try AtomicFile.write(Array(try encoder.encode(self)), to: path, mode: 0o600)
        } catch {
            logger.error("cannot save epoch and seq for the next process; they start again at 1 there",
                         metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// The epoch each upstream's next connection will carry.
    public var nextEpochs: [(name: String, epoch: UInt64)] {
        upstreams.map { ($0.key, $0.value.epoch + 1) }.sorted { $0.name < $1.name }
    }
}

import Foundation
import Testing
import WSRelayTestSupport
@testable import WSRelayCore

@Suite struct CredentialSecretReaderTests {
    func read(_ source: SecretSource, _ env: [String: String] = [:]) throws(CredentialError) -> String {
        try SecretReader.read(source, environment: env, credential: "api", what: "token").value
    }

    @Test func inlineAndEnvironment() throws {
        #expect(try read(.inline("abc\n")) == "abc")
        #expect(try read(.inline("abc\n\n")) == "abc\n")  // exactly one newline is trimmed
        #expect(try read(.environment("TOK"), ["TOK": "xyz\r\n"]) == "xyz")
        #expect(throws: CredentialError.self) { try read(.environment("MISSING")) }
        #expect(throws: CredentialError.self) { try read(.inline("")) }
        #expect(throws: CredentialError.self) { try read(.inline("\n")) }
    }

    @Test func fileAndSystemdCredential() throws {
        let dir = try TemporaryDirectory()
        try dir.write("tok", "from-file\n")
        #expect(try read(.file(dir.file("tok"))) == "from-file")
        let secret = try SecretReader.read(.file(dir.file("tok")), environment: [:], credential: "api", what: "token")
        #expect(secret.file?.size == 10)

        try FileManager.default.createDirectory(atPath: dir.file("creds"), withIntermediateDirectories: true)
        try dir.write("creds/api-token", "from-systemd")
        #expect(try read(.systemdCredential("api-token"), ["CREDENTIALS_DIRECTORY": dir.file("creds")]) == "from-systemd")
        #expect(try read(.systemdCredential("api-token"), ["CREDENTIALS_DIRECTORY": dir.file("creds") + "/"]) == "from-systemd")
        do {
            _ = try read(.systemdCredential("api-token"))
            Issue.record("read without CREDENTIALS_DIRECTORY")
        } catch {
            #expect(error.kind == .sourceUnavailable && error.message.contains("CREDENTIALS_DIRECTORY"))
        }
        do {
            _ = try read(.file(dir.file("missing")))
            Issue.record("read a missing file")
        } catch {
            #expect(error.message.contains(dir.file("missing")))
        }
    }

    @Test func changeTrackerNoticesReplacementAndEdits() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("tok", "one")
        var tracker = FileChangeTracker(path: path)
        var changes: [Bool] = []
        changes.append(tracker.checkChanged())  // first look only records
        changes.append(tracker.checkChanged())
        try dir.write("tok", "two-longer")  // atomic write: new inode and size
        changes.append(tracker.checkChanged())
        changes.append(tracker.checkChanged())  // each change reported once
        unlink(path)
        changes.append(tracker.checkChanged())
        changes.append(tracker.checkChanged())
        #expect(changes == [false, false, true, false, true, false])
    }
}

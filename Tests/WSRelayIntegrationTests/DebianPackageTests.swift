import Foundation
import Testing
import WSRelayCore
import WSRelayTestSupport

/// The Debian package, built by `scripts/package --binary` from the binary under test (the suite's debug build:
/// a release build would take many minutes), checked by lintian, then installed on this machine with `dpkg -i`,
/// used, and purged: nothing may be left behind. Needs root (CI runs as root); no systemd runs here, so the
/// maintainer scripts must do nothing harmful without it.
@Suite("Debian package", .mayBlock, .serialized, .timeLimit(.minutes(8)))
struct DebianPackageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Result { var status: Int32?; var stdout: String; var stderr: String; var all: String { stdout + stderr } }

    static func run(_ executable: String, _ arguments: [String], in dir: TemporaryDirectory, name: String,
                    environment: [String: String] = [:]) throws -> Result {
        let process = try WSRelayProcess(arguments, directory: dir, environment: environment, name: name,
                                         executable: executable)
        let status = process.waitForExit(timeout: .seconds(420))
        return Result(status: status, stdout: process.stdout, stderr: process.stderr)
    }

    /// `dpkg -i`/`--purge`, waiting (bounded) while another dpkg or apt holds the lock.
    static func dpkg(_ arguments: [String], in dir: TemporaryDirectory, name: String) throws -> Result {
        var result = try run("/usr/bin/dpkg", arguments, in: dir, name: name)
        var attempts = 0
        while result.status != 0, result.stderr.contains("lock"), attempts < 30 {
            attempts += 1
            sleep(2)
            result = try run("/usr/bin/dpkg", arguments, in: dir, name: "\(name)-\(attempts)")
        }
        return result
    }

    static func isInstalled(_ dir: TemporaryDirectory) throws -> Bool {
        let query = try run("/usr/bin/dpkg-query", ["-W", "-f=${Status}", "wsrelay"], in: dir, name: "query")
        return query.stdout.contains("install ok installed") || query.stdout.contains("config-files")
    }

    @Test("scripts/package builds a lintian-clean .deb; dpkg -i installs a working wsrelay; purge leaves nothing")
    func buildInstallUsePurge() throws {
        guard getuid() == 0 else {
            Issue.record("the package test installs with dpkg -i and needs root (CI runs as root)")
            return
        }
        let dir = try TemporaryDirectory("package")
        guard try !Self.isInstalled(dir) else {
            Issue.record("a wsrelay package is already installed on this machine; remove it (dpkg --purge wsrelay) so the test may install and purge its own")
            return
        }

        // Build and lint.
        let built = try Self.run(Self.root.appendingPathComponent("scripts/package").path,
                                 ["--binary", WSRelayProcess.binaryPath, "--output", dir.path], in: dir, name: "package")
        #expect(built.status == 0, "scripts/package failed:\n\(built.all)")
        #expect(built.stdout.contains("lintian: no errors"), "\(built.all)")
        #expect(!built.stdout.contains("\nE: "), "lintian errors:\n\(built.stdout)")
        let deb = dir.file("wsrelay_\(WSRelayVersion.string)_amd64.deb")
        #expect(FileManager.default.fileExists(atPath: deb), "no \(deb):\n\(built.all)")
        guard built.status == 0, FileManager.default.fileExists(atPath: deb) else { return }

        let info = try Self.run("/usr/bin/dpkg-deb", ["--field", deb, "Package", "Version", "Architecture", "Depends"],
                                in: dir, name: "fields")
        #expect(info.stdout.contains("Version: \(WSRelayVersion.string)"), "\(info.all)")
        let depends = info.stdout.split(separator: "\n").first { $0.hasPrefix("Depends: ") } ?? ""
        for library in ["libc6", "libsystemd0"] {
            #expect(depends.contains(library), "Depends must name \(library): \(depends)")
        }
        let contents = try Self.run("/usr/bin/dpkg-deb", ["--contents", deb], in: dir, name: "contents")
        // `dpkg-deb --contents` lines end in `./usr/bin/wsrelay` (directories with a slash, links with ` -> target`).
        let paths = contents.stdout.split(separator: "\n").compactMap { line -> String? in
            guard let dot = line.range(of: " ./") else { return nil }
            var path = String(String(line[dot.upperBound...]).components(separatedBy: " -> ")[0])
            if path.hasSuffix("/") { path.removeLast() }
            return path.isEmpty ? nil : "/" + path
        }
        for expected in ["/usr/bin/wsrelay", "/lib/systemd/system/wsrelay.service", "/lib/systemd/system/wsrelay@.service",
                         "/lib/systemd/system/wsrelay.socket", "/etc/wsrelay/wsrelay.toml", "/etc/logrotate.d/wsrelay",
                         "/usr/share/man/man1/wsrelay.1.gz", "/usr/share/man/man5/wsrelay.toml.5.gz",
                         "/usr/share/bash-completion/completions/wsrelay", "/usr/share/zsh/vendor-completions/_wsrelay",
                         "/usr/share/fish/vendor_completions.d/wsrelay.fish", "/usr/share/doc/wsrelay/copyright"] {
            #expect(paths.contains(expected), "\(expected) missing from the package:\n\(contents.stdout)")
        }
        // What exists before installing stays; everything else the package brings must go with the purge.
        let existedBefore = Set(paths.filter { FileManager.default.fileExists(atPath: $0) })
        let extraState = ["/var/lib/wsrelay", "/var/log/wsrelay"].filter { !FileManager.default.fileExists(atPath: $0) }

        // Install (no systemd runs here: the maintainer scripts must succeed and do nothing).
        let installed = try Self.dpkg(["-i", deb], in: dir, name: "install")
        defer { _ = try? Self.dpkg(["--purge", "wsrelay"], in: dir, name: "cleanup") }
        #expect(installed.status == 0, "dpkg -i failed:\n\(installed.all)")
        guard installed.status == 0 else { return }
        let conffiles = try Self.run("/usr/bin/dpkg-query", ["-W", "-f=${Conffiles}", "wsrelay"], in: dir, name: "conffiles")
        #expect(conffiles.stdout.contains("/etc/wsrelay/wsrelay.toml") && conffiles.stdout.contains("/etc/logrotate.d/wsrelay"),
                "\(conffiles.all)")

        // Use it.
        let version = try Self.run("/usr/bin/wsrelay", ["--version"], in: dir, name: "version")
        #expect(version.status == 0 && version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == WSRelayVersion.string,
                "\(version.all)")
        let check = try Self.run("/usr/bin/wsrelay", ["check-config", "--config", "/etc/wsrelay/wsrelay.toml"], in: dir, name: "check")
        #expect(check.status == 0, "\(check.all)")
        for unit in ["wsrelay.service", "wsrelay@.service", "wsrelay.socket"] {
            let text = (try? String(contentsOfFile: "/lib/systemd/system/\(unit)", encoding: .utf8)) ?? ""
            #expect(text.contains("/usr/bin/wsrelay") || unit == "wsrelay.socket", "\(unit) must run /usr/bin/wsrelay")
            #expect(!text.contains("/usr/local"), "\(unit) still names /usr/local")
        }
        // A template is verified through an instance; the socket next to its service.
        for unit in ["wsrelay.service", "wsrelay@test.service", "wsrelay.socket"] {
            let verify = try Self.run("/usr/bin/systemd-analyze", ["verify", unit], in: dir, name: "verify-\(unit)")
            #expect(verify.status == 0, "\(unit): \(verify.all)")
            #expect(!verify.all.contains("wsrelay"), "warnings about \(unit): \(verify.all)")
        }
        for (page, mustContain) in [("/usr/share/man/man1/wsrelay.1.gz", "check-config"),
                                    ("/usr/share/man/man5/wsrelay.toml.5.gz", "[[upstream]]")] {
            let man = try Self.run("/usr/bin/man", ["--warnings", "-l", page], in: dir, name: "man",
                                   environment: ["MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"])
            #expect(man.status == 0, "\(page): \(man.all)")
            #expect(man.stdout.contains(mustContain), "\(page) lacks \(mustContain):\n\(man.stdout.prefix(2000))")
            #expect(man.stderr.isEmpty, "\(page) warnings: \(man.stderr)")
        }
        let bash = try Self.run("/bin/bash", ["-n", "/usr/share/bash-completion/completions/wsrelay"], in: dir, name: "bash")
        #expect(bash.status == 0, "\(bash.all)")

        // What the daemon and systemd would have made, which dpkg does not know about.
        for path in extraState { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }
        for path in extraState { try "x".write(toFile: "\(path)/left.jsonl", atomically: false, encoding: .utf8) }

        // Purge: no trace.
        let purged = try Self.dpkg(["--purge", "wsrelay"], in: dir, name: "purge")
        #expect(purged.status == 0, "\(purged.all)")
        #expect(try !Self.isInstalled(dir))
        let left = (paths + extraState + ["/etc/wsrelay"]).filter { !existedBefore.contains($0) && FileManager.default.fileExists(atPath: $0) }
        #expect(left.isEmpty, "left behind after purge: \(left)")
    }
}

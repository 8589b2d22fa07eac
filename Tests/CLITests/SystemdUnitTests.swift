import Common
import Foundation
import Testing
import TestSupport
@testable import sshca

/// The systemd units in ca-config/ are valid units, and every sshca command line in them is one
/// the CLI accepts (parsed and validated exactly as a run would).
@Suite("ca-config systemd units")
struct SystemdUnitTests {
    static let units = ["sshca.service", "sshca-krl-sync.service", "sshca-krl-sync.timer", "sshca-host-cert.service", "sshca-host-cert.timer"]
    /// systemd user units (an engineer's own manager).
    static let userUnits = ["sshca-login.service", "sshca-login.timer"]

    @Test("systemd-analyze verify accepts every unit")
    func verify() async throws {
        try await withTemporaryDirectory { dir in
            let sshca = try SSHCA.executableURL().path
            var paths: [String] = []
            for unit in Self.units {
                let text = try readText(packageRoot.child("ca-config").child(unit)).replacingOccurrences(of: "/usr/local/bin/sshca", with: sshca)
                try writeText(text, to: dir.child(unit))
                paths.append(dir.child(unit).path)
            }
            let result = try await runProcess("systemd-analyze", ["verify"] + paths, environment: ["SYSTEMD_LOG_LEVEL": "warning"])
            #expect(result.succeeded && result.stderrText.isEmpty, "\(result)")
            var userPaths: [String] = []
            for unit in Self.userUnits {
                let text = try readText(packageRoot.child("ca-config").child(unit)).replacingOccurrences(of: "/usr/local/bin/sshca", with: sshca)
                try writeText(text, to: dir.child(unit))
                userPaths.append(dir.child(unit).path)
            }
            // A user manager needs a runtime directory, even only to read units.
            let runtime = dir.child("runtime")
            try FileManager.default.createDirectory(at: runtime, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let user = try await runProcess("systemd-analyze", ["--user", "verify"] + userPaths,
                                            environment: ["SYSTEMD_LOG_LEVEL": "warning", "XDG_RUNTIME_DIR": runtime.path])
            #expect(user.succeeded && user.stderrText.isEmpty, "\(user)")
        }
    }

    @Test("every oneshot unit has a start timeout (systemd gives oneshot units none: one hung run would stop every later one); the service raises its file limit")
    func timeouts() throws {
        for unit in ["sshca-krl-sync.service", "sshca-host-cert.service", "sshca-login.service"] {
            let text = try readText(packageRoot.child("ca-config").child(unit))
            let limit = text.split(separator: "\n").first { $0.hasPrefix("TimeoutStartSec=") }.flatMap { Int($0.dropFirst("TimeoutStartSec=".count)) }
            #expect(text.contains("Type=oneshot") && limit != nil && limit! > 60 && limit! <= 600, "\(unit): TimeoutStartSec \(String(describing: limit))")
        }
        let service = try readText(packageRoot.child("ca-config").child("sshca.service"))
        #expect(service.contains("\nLimitNOFILE=65536\n"), "sshca.service sets no LimitNOFILE")
    }

    @Test("each ExecStart is a command line sshca parses and validates", arguments: ["sshca.service", "sshca-krl-sync.service", "sshca-host-cert.service", "sshca-login.service"])
    func execStart(unit: String) throws {
        let text = try readText(packageRoot.child("ca-config").child(unit))
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let words = line.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        #expect(words.first == "/usr/local/bin/sshca")
        #expect(throws: Never.self, "\(line)") { _ = try SSHCA.parseAsRoot(Array(words.dropFirst())) }
    }
}

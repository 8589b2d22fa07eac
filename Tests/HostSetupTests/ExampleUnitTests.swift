import Common
import Foundation
import Testing
import TestSupport
import Authority
import HostSetup

/// The units in ca-config/ are what `host setup --ca-url` writes, for example values: one source.
@Suite("ca-config units are setup's")
struct ExampleUnitTests {
    static let exampleHostCA = "SHA256:Pq6lbxDjZbYFAC2AZd2XTExiBkjr8bXSLxYNOzRZIRA"

    static func examples() throws -> [SystemdUnits.Unit] {
        try SystemdUnits.krlSync(executable: "/usr/local/bin/sshca", url: "https://ca.example.com:8443", krlPath: "/etc/ssh/sshca_revoked.krl",
                                 caKeyPath: "/etc/ssh/sshca_user_ca.pub", caBundle: nil)
            + SystemdUnits.hostCert(executable: "/usr/local/bin/sshca", url: "https://ca.example.com:8443", hostCAFingerprint: exampleHostCA,
                                    tokenFile: "/etc/ssh/sshca_host_token", principals: ["web-01.example.com", "web-01"], caBundle: nil)
    }

    @Test("ca-config/sshca-krl-sync.* and sshca-host-cert.* are byte for byte what host setup --ca-url writes for the example values")
    func sameText() throws {
        for unit in try Self.examples() {
            let file = packageRoot.child("ca-config").child(unit.name)
            let current = try? readText(file)
            if current != unit.text {
                // What it should be, to copy over after reviewing the difference.
                let wanted = FileManager.default.temporaryDirectory.appendingPathComponent("sshca-expected-\(unit.name)")
                try unit.text.write(to: wanted, atomically: true, encoding: .utf8)
                Issue.record("ca-config/\(unit.name) differs from what host setup --ca-url writes; the expected text is in \(wanted.path)")
            }
        }
    }

    @Test("a value systemd would split or unquote is refused, % and $ are escaped, relative paths are refused, the host token goes in")
    func arguments() throws {
        for url in ["https://a b", "https://a\"b"] {
            let error = #expect(throws: SSHCAError.self) { try SystemdUnits.krlSync(executable: "/usr/local/bin/sshca", url: url, krlPath: "/k", caKeyPath: "/c", caBundle: nil) }
            #expect(error?.reason.contains("cannot go into a systemd unit's command line") == true, "\(String(describing: error))")
        }
        let units = try SystemdUnits.krlSync(executable: "/usr/local/bin/sshca", url: "https://a%b$c", krlPath: "/k", caKeyPath: "/c", caBundle: nil,
                                             tokenFile: "/etc/ssh/sshca_host_token")
        #expect(units[0].text.contains("--from https://a%%b$$c ") && units[0].text.contains("--token-file /etc/ssh/sshca_host_token"), "\(units[0].text)")
        // systemd runs units from /: a relative path would point elsewhere.
        let relative = #expect(throws: SSHCAError.self) { try SystemdUnits.krlSync(executable: "/usr/local/bin/sshca", url: "https://a", krlPath: "/k", caKeyPath: "/c", caBundle: "tls.crt") }
        #expect(relative?.reason.contains("tls.crt is a relative path") == true, "\(String(describing: relative))")
    }
}

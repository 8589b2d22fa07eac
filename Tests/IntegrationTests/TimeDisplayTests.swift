import Common
import Foundation
import Testing
import TestSupport

/// Every time a person reads carries its offset (RFC 3339), whatever the machine's zone.
@Suite("times people read")
struct TimeDisplayTests {
    @Test("sign, list, token create and audit list print RFC 3339 times with the zone's offset (TZ=Asia/Kolkata: +05:30; UTC: Z); the audit's epoch seconds read as times")
    func offsets() async throws {
        try await withTemporaryDirectory { dir in
            let home = dir.child("ca").path
            try checked(try await SSHCA.run(["init", "--home", home, "--no-passphrase"]))
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let kolkata: [String: String?] = ["TZ": "Asia/Kolkata"]
            let sign = try await SSHCA.run(["sign", "--home", home, "--key-id", "a", "--principals", "a", key.publicKey.path], environment: kolkata)
            #expect(sign.succeeded && sign.stderrText.contains("+05:30 to ") && sign.stderrText.hasSuffix("+05:30\n"), "\(sign)")
            let list = try await SSHCA.run(["list", "--home", home], environment: kolkata)
            #expect(list.succeeded && list.stdoutText.contains("+05:30"), "\(list)")
            let token = try await SSHCA.run(["token", "create", "--home", home, "--role", "deploy", "--name", "ci", "--ttl", "1d"], environment: ["TZ": "UTC"])
            #expect(token.succeeded && token.stderrText.range(of: #"expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\."#, options: .regularExpression) != nil, "\(token)")
            let audit = try await SSHCA.run(["audit", "list", "--home", home], environment: kolkata)
            let lines = audit.stdoutText.split(separator: "\n")
            #expect(!lines.isEmpty && lines.allSatisfy { $0.contains("+05:30  ") }, "\(audit)")
            #expect(audit.stdoutText.range(of: #"expires=\d{4}-\d\d-\d\dT[0-9:]{8}\+05:30"#, options: .regularExpression) != nil, "the token's expiry is still epoch seconds: \(audit)")
        }
    }
}

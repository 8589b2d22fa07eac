import Common
import Foundation
import Testing
import TestSupport

/// Acceptance item 6: a host certificate from `sshca sign --host` plus the known_hosts lines from
/// `sshca known-hosts` let `ssh -o StrictHostKeyChecking=yes` connect with no plain host key
/// anywhere; after `sshca revoke --key hostkey.pub` the lines carry `@revoked` and ssh refuses.
@Suite("host certificates and sshca known-hosts")
struct HostCertificateTests {
    @Test("known-hosts output alone trusts the certified host; @revoked after revoking its key, and the connection fails")
    func hostCertificate() async throws {
        try await withTreeDirectory("hostcert") { dir in
            let ca = try await CAFixture.create(in: dir)
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let hostKey = KeyPair(privateKey: tree.hostKey, type: "ed25519")
            let hostCertificate = try await ca.sign(hostKey, keyID: "test-host", principals: ["127.0.0.1"], host: true)
            let listing = try await SSHKeygen.listCertificate(hostCertificate)
            #expect(listing.kind == "host" && listing.principals == ["127.0.0.1"], "\(listing.raw)")
            try writeText(try readText(tree.sshdConfig) + "HostCertificate \(hostCertificate.path)\n", to: tree.sshdConfig)
            let setup = try await tree.setup(caKey: ca.userCAPublicKey)
            try #require(setup.succeeded, "\(setup)")
            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }

            let user = try await makeClientKey(tree.client, "id_user")
            let userCertificate = try await ca.sign(user, keyID: "user", principals: [currentUserName])

            func knownHosts() async throws -> String {
                try await checked(SSHCA.run(["known-hosts", "--home", ca.home.path, "--hosts", "127.0.0.1,[127.0.0.1]:\(sshd.port)"])).stdoutText
            }
            let clientKnownHosts = tree.client.child("known_hosts_from_sshca")
            func connect() async throws -> ProcessResult {
                try await SSHClient.run(port: sshd.port, identity: user.privateKey, certificate: userCertificate,
                                        knownHosts: clientKnownHosts, strictHostKeyChecking: "yes")
            }

            let lines = try await knownHosts()
            let hostCA = keyTypeAndBlob(try readText(ca.home.child("host_ca.pub")))
            #expect(lines.hasPrefix("@cert-authority 127.0.0.1,[127.0.0.1]:\(sshd.port) \(hostCA)"), "known-hosts:\n\(lines)")
            #expect(!lines.contains("@revoked"), "known-hosts before any revocation:\n\(lines)")
            #expect(!lines.contains(keyTypeAndBlob(try readText(tree.hostPublicKey))), "the plain host key is in the known_hosts lines")
            try writeText(lines, to: clientKnownHosts)

            let trusted = try await connect()
            #expect(trusted.succeeded && trusted.stdoutText == "ok\n",
                    "ssh with only the @cert-authority line could not connect:\n\(trusted)\n--- sshd log ---\n\(sshd.log)")

            // Control: another CA's @cert-authority line does not make the host trusted.
            let otherHome = dir.child("other-ca")
            try await checked(SSHCA.run(["init", "--home", otherHome.path, "--no-passphrase"]))
            let otherLines = try await checked(SSHCA.run(["known-hosts", "--home", otherHome.path, "--hosts", "127.0.0.1,[127.0.0.1]:\(sshd.port)"])).stdoutText
            try writeText(otherLines, to: clientKnownHosts)
            let untrusted = try await connect()
            #expect(!untrusted.succeeded, "ssh trusted the host through an unrelated CA:\n\(untrusted)")

            // Revoke the host key: @revoked line, and the connection is refused.
            try await ca.revoke(["--key", tree.hostPublicKey.path])
            let revokedLines = try await knownHosts()
            let revokedLine = "@revoked * \(keyTypeAndBlob(try readText(tree.hostPublicKey)))"
            #expect(revokedLines.split(separator: "\n").contains { $0.hasPrefix(revokedLine) }, "no @revoked line for the host key:\n\(revokedLines)")
            #expect(revokedLines.hasPrefix("@cert-authority 127.0.0.1,[127.0.0.1]:\(sshd.port) \(hostCA)"), "\(revokedLines)")
            try writeText(revokedLines, to: clientKnownHosts)
            let refused = try await connect()
            #expect(!refused.succeeded, "ssh connected to a host whose key is @revoked:\n\(refused)")
            #expect(refused.stderrText.contains("REVOKED"), "ssh did not refuse for revocation:\n\(refused)")
        }
    }
}

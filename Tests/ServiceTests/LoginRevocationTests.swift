import Common
import Foundation
import Testing
import TestSupport

/// `sshca login` never keeps a certificate that the service's KRL revokes: sshd would refuse it
/// with nothing but "Permission denied (publickey)".
@Suite("service: login and the KRL")
struct LoginRevocationTests {
    @Test("after its serial is revoked, login --status says REVOKED (exit 1) and login gets a new certificate; ssh-keygen -Q agrees")
    func revokedCertificateIsReplaced() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let home = dir.child("home")
            let identity = try await server.enroll("ivy", home: home)
            let env: [String: String?] = ["HOME": home.path, "SSH_AUTH_SOCK": nil]
            let login = ["login", "--ca-url", server.url, "--user", "ivy", "--identity", identity.privateKey.path]
            let first = try await SSHCA.run(login, environment: env)
            #expect(first.succeeded && first.stdoutText.contains("serial 1,"), "\(first)")
            let kept = try await SSHCA.run(login, environment: env)
            #expect(kept.succeeded && kept.stdoutText.contains("Still valid and not revoked"), "\(kept)")

            _ = try checked(try await server.sshca(["revoke", "--serial", "1", "--reason", "laptop stolen"]))
            let certificate = home.child(".ssh").child("sshca_ed25519-cert.pub")
            let fetched = dir.child("served.krl")
            try Data(try await server.http("GET", "/v1/krl").body).write(to: fetched)
            let query = try await runProcess("ssh-keygen", ["-Q", "-f", fetched.path, certificate.path])
            #expect(!query.succeeded, "ssh-keygen -Q does not see the certificate as revoked: \(query)")

            let status = try await SSHCA.run(["login", "--status", "--ca-url", server.url], environment: env)
            #expect(status.exitCode == 1 && status.stdoutText.contains("REVOKED") && status.stdoutText.contains("serial 1 is revoked"), "\(status)")
            let offline = try await SSHCA.run(["login", "--status"], environment: env)
            #expect(offline.succeeded && !offline.stdoutText.contains("REVOKED"), "without --ca-url nothing is fetched: \(offline)")

            let again = try await SSHCA.run(login, environment: env)
            #expect(again.succeeded && again.stdoutText.contains("was revoked") && again.stdoutText.contains("serial 2,"), "\(again)")
            try Data(try await server.http("GET", "/v1/krl").body).write(to: fetched)
            let fresh = try await runProcess("ssh-keygen", ["-Q", "-f", fetched.path, certificate.path])
            #expect(fresh.succeeded, "the new certificate is revoked too: \(fresh)")
        }
    }
}

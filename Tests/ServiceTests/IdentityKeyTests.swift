import Common
import Foundation
import Testing
import TestSupport

/// `sshca login` with each kind of identity key a user may enroll: a key file (signed by
/// ssh-keygen -Y sign), a FIDO sk- key (through sk-dummy.so, user presence checked) and RSA.
@Suite("service: identity key kinds")
struct IdentityKeyTests {
    @Test("login with an identity key file of each type", arguments: [UserKeyType.ed25519, .ecdsa384, .rsa3072, .skEd25519, .skEcdsa])
    func loginWithKeyFile(type: UserKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let home = dir.child("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let identity = try await SSHKeygen.generate(type, at: home.child("identity"), comment: "identity")
            try checked(try await server.sshca(["user", "add", "ivy", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let login = try await SSHCA.run(["login", "--ca-url", server.url, "--user", "ivy", "--identity", identity.privateKey.path],
                                            environment: ["HOME": home.path, "SSH_SK_PROVIDER": type.isSecurityKey ? skDummyProvider : nil])
            #expect(login.succeeded && login.stdoutText.contains("Principals: ivy"), "\(type): \(login)\n\(server.log)")
            #expect(login.stdoutText.contains("Not in ssh-agent"), "no agent runs, so the ~/.ssh/config lines are printed: \(login)")
            let certificate = home.child(".ssh").child("sshca_ed25519-cert.pub")
            let listing = try await SSHKeygen.listCertificate(certificate)
            #expect(listing.principals == ["ivy"] && listing.kind == "user", "\(listing.raw)")
            let status = try await SSHCA.run(["login", "--status"], environment: ["HOME": home.path])
            #expect(status.succeeded && status.stdoutText.contains("principals ivy"), "\(status)")
        }
    }
}

import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// Acceptance item 2: a real sshd with `RevokedKeys` pointing at our KRL refuses each revoked
/// certificate and key and accepts the others, with the KRL unsigned and signed; revoking by
/// principal and by key through the CLI works end to end.
@Suite("sshd honours our KRLs")
struct SSHDRevocationTests {
    struct Login: CustomStringConvertible {
        var name: String
        var key: KeyPair
        var certificate: URL
        var serial: UInt64
        var description: String { name }
    }

    @Test("sshd refuses revoked certificates and keys, accepts the rest; unsigned, signed, and after CLI revokes")
    func sshdRefusesRevoked() async throws {
        try await withTemporaryDirectory(prefix: "ledger-sshd") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let keys = try makeDirectory(dir.child("keys"))
            let me = currentUserName

            func make(_ name: String, keyID: String, extraPrincipals: [String] = []) async throws -> Login {
                let key = try await makeUserKey(keys, name)
                let signed = try await ca.sign(key, keyID: keyID, principals: [me] + extraPrincipals)
                return Login(name: name, key: key, certificate: signed.file, serial: signed.certificate.body.serial)
            }
            let bySerial = try await make("by-serial", keyID: "serial-victim")
            let byKeyID = try await make("by-key-id", keyID: "keyid-victim")
            let byKey = try await make("by-key", keyID: "key-victim")
            let keeper = try await make("keeper", keyID: "keeper")
            let byPrincipal = try await make("by-principal", keyID: "principal-victim", extraPrincipals: ["team-x"])
            let byLaterKey = try await make("by-later-key", keyID: "later-key-victim")
            let everyone = [bySerial, byKeyID, byKey, keeper, byPrincipal, byLaterKey]

            let serverKRL = try makeDirectory(dir.child("server")).child("revoked_keys.krl")
            try installAtomically(ca.krlFile, to: serverKRL)
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: ca.userCAPublicKey,
                                            extraConfig: ["RevokedKeys \(serverKRL.path)"])
            defer { sshd.stop() }

            func expectLogins(accepted: [Login], refused: [Login], phase: String) async throws {
                for login in accepted {
                    let result = try await sshd.ssh(identity: login.key.privateKey, certificate: login.certificate)
                    #expect(result.succeeded && result.stdoutText.contains("ok"),
                            "[\(phase)] \(login) (serial \(login.serial)) should log in:\n\(result)\n--- sshd log ---\n\(sshd.log)")
                }
                for login in refused {
                    let mark = sshd.logMark()
                    let result = try await sshd.ssh(identity: login.key.privateKey, certificate: login.certificate)
                    let log = sshd.log(since: mark)
                    #expect(!result.succeeded, "[\(phase)] \(login) (serial \(login.serial)) logged in although revoked:\n\(result)")
                    #expect(log.contains("revoked by file \(serverKRL.path)"),
                            "[\(phase)] sshd did not refuse \(login) for revocation:\n\(log)")
                }
            }

            // Baseline: the initial KRL (from init) revokes nothing, everyone logs in.
            try await expectLogins(accepted: everyone, refused: [], phase: "before any revocation")

            try await ca.revokeChecked(["--serial", "\(bySerial.serial)"])
            try await ca.revokeChecked(["--key-id", "keyid-victim"])
            try await ca.revokeChecked(["--key", byKey.key.publicKey.path])
            let unsigned = try KRL.parse(Array(try Data(contentsOf: ca.krlFile)))
            #expect(unsigned.signatures.isEmpty, "[krl] sign = false, yet the KRL is signed")
            try installAtomically(ca.krlFile, to: serverKRL)
            try await expectLogins(accepted: [keeper, byPrincipal, byLaterKey], refused: [bySerial, byKeyID, byKey], phase: "unsigned KRL")

            // Signed: [krl] sign = true, then `sshca krl write`.
            try ca.setSignKRL(true)
            let signedFile = dir.child("signed.krl")
            try await ca.runChecked(["krl", "write"], ["--output", signedFile.path])
            let signedBytes = Array(try Data(contentsOf: signedFile))
            let signed = try KRL.parse(signedBytes)
            let userCA = try PublicKeyText(parsing: readText(ca.userCAPublicKey)).key
            // Signed means a detached signature beside it (FILE.sig), never a section inside.
            let signedVerified = try await sshKeygenVerify(krl: signedFile, signature: URL(fileURLWithPath: signedFile.path + ".sig"), caKey: ca.userCAPublicKey, in: dir)
            #expect(signed.signatures.isEmpty && signedVerified.verified, "the written KRL is not signed by the user CA: \(signed.signatures) \(signedVerified.result)")
            #expect(signed.krl.version > unsigned.krl.version)
            #expect(Array(try Data(contentsOf: ca.krlFile)) == signedBytes, "krl write did not refresh the home's revoked.krl with the same KRL")
            let show = try await SSHCA.run(["krl", "show", "--krl", signedFile.path])
            #expect(show.succeeded && show.stdoutText.contains("(detached) by ED25519 \(userCA.fingerprint): valid"), "\(show)")
            try await expectKRLLoadable(signedFile)
            try installAtomically(signedFile, to: serverKRL)
            try await expectLogins(accepted: [keeper, byPrincipal, byLaterKey], refused: [bySerial, byKeyID, byKey], phase: "signed KRL")

            // End to end: revoke by principal through the CLI, deploy the new revoked.krl.
            let before = try ca.publishedKRL().version
            try await ca.revokeChecked(["--principal", "team-x"])
            let afterPrincipal = try KRL.parse(Array(try Data(contentsOf: ca.krlFile)))
            #expect(afterPrincipal.krl.version > before)
            let principalVerified = try await sshKeygenVerify(krl: ca.krlFile, signature: URL(fileURLWithPath: ca.krlFile.path + ".sig"), caKey: ca.userCAPublicKey, in: dir)
            #expect(afterPrincipal.signatures.isEmpty && principalVerified.verified, "the KRL published by revoke is not signed: \(principalVerified.result)")
            try installAtomically(ca.krlFile, to: serverKRL)
            try await expectLogins(accepted: [keeper, byLaterKey], refused: [bySerial, byKeyID, byKey, byPrincipal], phase: "after revoke --principal")

            // And by key.
            try await ca.revokeChecked(["--key", byLaterKey.key.publicKey.path])
            try installAtomically(ca.krlFile, to: serverKRL)
            try await expectLogins(accepted: [keeper], refused: [bySerial, byKeyID, byKey, byPrincipal, byLaterKey], phase: "after revoke --key")
        }
    }
}

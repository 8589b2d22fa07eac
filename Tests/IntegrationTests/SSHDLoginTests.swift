import Common
import Foundation
import Testing
import TestSupport

/// Certificates presented to a real sshd trusting the CA through TrustedUserCAKeys
/// (AuthorizedKeysFile none: the certificate is the only way in).
@Suite("Logging in to a real sshd with sshca user certificates")
struct SSHDLoginTests {
    static let loginKeyTypes: [UserKeyType] = [.ed25519, .ecdsa256, .ecdsa521, .rsa2048, .rsa3072, .skEd25519, .skEcdsa]

    @Test("user certificate logs in", arguments: loginKeyTypes)
    func userCertificateLogsIn(keyType: UserKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(keyType, into: dir, name: "id_user")
            let cert = try await signForLogin(home: home, key: key, keyID: "login \(keyType)")
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }
            let provider = keyType.isSecurityKey ? skDummyProvider : nil

            let ok = try await sshd.ssh(identity: key.privateKey, certificate: cert, securityKeyProvider: provider)
            expectLogin(ok, sshd: sshd)
            #expect(sshd.log.contains("Accepted publickey for \(currentUserName)"), "\(sshd.log)")
            #expect(sshd.log.contains("ID login \(keyType)"), "sshd did not log the certificate's key id")

            // Control: the bare key (no certificate) is not authorized by anything else. A copy
            // elsewhere, because ssh also loads KEY-cert.pub next to KEY on its own.
            let bareDir = try dir.child("bare").creatingDirectory()
            let bareKey = bareDir.child("id_bare")
            try copyItem(key.privateKey, to: bareKey)
            let mark = sshd.logMark()
            let bare = try await sshd.ssh(identity: bareKey, certificate: nil, securityKeyProvider: provider)
            expectRefusedLogin(bare, sshd: sshd, since: mark)
        }
    }

    @Test("certificates from non-Ed25519 CA keys log in", arguments: CAKeyType.allCases.filter { $0 != .ed25519 })
    func caKeyTypeLogsIn(caType: CAKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(caType, into: dir)
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
            let cert = try await signForLogin(home: home, key: key)
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }
            expectLogin(try await sshd.ssh(identity: key.privateKey, certificate: cert), sshd: sshd)
        }
    }

    enum Refusal: String, CaseIterable, Sendable, CustomStringConvertible {
        case expired, notYetValid, wrongPrincipal, hostCertificateAsUser, otherCA, sourceAddress
        var description: String { rawValue }
    }

    @Test("sshd refuses certificates it must not accept", arguments: Refusal.allCases)
    func refusedCertificate(_ refusal: Refusal) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }

            // Positive control on the same server.
            let good = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_good")
            let goodCert = try await signForLogin(home: home, key: good)
            expectLogin(try await sshd.ssh(identity: good.privateKey, certificate: goodCert), sshd: sshd)

            let key = try await Fixtures.copyUserKey(.ecdsa256, into: dir, name: "id_bad")
            var signHome = home
            var arguments = ["--key-id", "refused \(refusal)", "--principals", currentUserName]
            var evidence: [String] = []
            switch refusal {
            case .expired:
                arguments += ["--validity", "20200101:20200102"]
                evidence = ["Certificate invalid: expired"]
            case .notYetValid:
                arguments += ["--validity", "20990101:20990102"]
                evidence = ["Certificate invalid: not yet valid"]
            case .wrongPrincipal:
                arguments = ["--key-id", "refused \(refusal)", "--principals", "not-\(currentUserName),someone-else"]
                evidence = ["Certificate invalid: name is not a listed principal"]
            case .hostCertificateAsUser:
                arguments.append("--host")
            case .otherCA:
                signHome = try await Fixtures.copyCAHome(.ecdsaP256, into: dir, name: "other-ca-home")
                let otherFingerprint = try await SSHKeygen.fingerprint(signHome.child("user_ca.pub"))
                evidence = ["Failed publickey for \(currentUserName)", "CA ECDSA \(otherFingerprint)"]
            case .sourceAddress:
                arguments += ["--source-address", "10.9.9.9/32"]
                evidence = ["not from a permitted source address"]
            }
            let signed = try await sshcaSign(home: signHome, arguments, publicKey: key.publicKey)
            try #require(signed.succeeded, "\(signed)")

            let mark = sshd.logMark()
            let result = try await sshd.ssh(identity: key.privateKey, certificate: key.certificate)
            expectRefusedLogin(result, sshd: sshd, since: mark, logEvidence: evidence)
        }
    }

    @Test("force-command in the certificate replaces the requested command")
    func forceCommandIsObeyed() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
            let cert = try await signForLogin(home: home, key: key, extra: ["--force-command", "echo forced"])
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }
            for command in ["echo ok", "id -un", "cat /etc/hostname"] {
                let result = try await sshd.ssh(identity: key.privateKey, certificate: cert, command: command)
                expectLogin(result, sshd: sshd, output: "forced")
            }
        }
    }

    @Test("source-address that includes 127.0.0.1 lets the login through")
    func matchingSourceAddressLogsIn() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
            let cert = try await signForLogin(home: home, key: key, extra: ["--source-address", "10.9.9.9/32,127.0.0.0/8"])
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }
            expectLogin(try await sshd.ssh(identity: key.privateKey, certificate: cert), sshd: sshd)
        }
    }
}

import Common
import Foundation
import Testing
import TestSupport

@Suite("PuTTY keys (RFC 4716 public keys) signed by sshca, used with plink")
struct PuTTYTests {
    enum PuTTYKey: String, CaseIterable, Sendable, CustomStringConvertible {
        case ed25519, rsa2048 = "rsa-2048", ecdsa256 = "ecdsa-256"
        var description: String { rawValue }
        var puttygenType: (String, Int?) {
            switch self {
            case .ed25519: return ("ed25519", nil)
            case .rsa2048: return ("rsa", 2048)
            case .ecdsa256: return ("ecdsa", 256)
            }
        }
        var certificateTypeName: String {
            switch self {
            case .ed25519: return UserKeyType.ed25519.certificateTypeName
            case .rsa2048: return UserKeyType.rsa2048.certificateTypeName
            case .ecdsa256: return UserKeyType.ecdsa256.certificateTypeName
            }
        }
    }

    @Test("plink logs in with -cert and with a PPK that embeds the certificate", arguments: PuTTYKey.allCases)
    func plinkLogsIn(keyType: PuTTYKey) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let ppk = dir.child("k.ppk")
            let (type, bits) = keyType.puttygenType
            try await PuTTYgen.generate(type: type, bits: bits, ppk: ppk, comment: "putty \(keyType)")
            let pub = dir.child("k.pub")
            try await PuTTYgen.exportRFC4716(ppk: ppk, to: pub)
            #expect(try readText(pub).hasPrefix("---- BEGIN SSH2 PUBLIC KEY ----"))

            let keyID = "putty \(keyType) key"
            let signed = try await sshcaSign(
                home: home, ["--key-id", keyID, "--principals", currentUserName], publicKey: pub)
            try #require(signed.succeeded, "sshca sign of an RFC 4716 key failed:\n\(signed)")
            let cert = dir.child("k-cert.pub")
            try #require(fileExists(cert), "expected k-cert.pub next to k.pub")

            // The certificate is on the PuTTY key: compare with PuTTYgen's own OpenSSH export.
            let openssh = dir.child("k-openssh.pub")
            try await PuTTYgen.exportOpenSSH(ppk: ppk, to: openssh)
            let listing = try await SSHKeygen.listCertificate(cert)
            #expect(listing.certificateTypeName == keyType.certificateTypeName)
            #expect(listing.publicKeyFingerprint == (try await SSHKeygen.fingerprint(openssh)))
            #expect(listing.keyID == keyID)
            let (info, inspectResult) = try await SSHCA.inspect(cert)
            #expect(inspectResult.exitCode == 0 && info.signatureValid, "\(inspectResult)")

            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }

            let withCertOption = try await sshd.plink(ppk: ppk, certificate: cert, home: dir)
            expectLogin(withCertOption, sshd: sshd)

            let combined = dir.child("kc.ppk")
            try await PuTTYgen.addCertificate(ppk: ppk, certificate: cert, output: combined)
            let certInfo = try await runChecked("puttygen", [combined.path, "-O", "cert-info"])
            #expect(certInfo.stdoutText.contains("Certificate ID string: \(keyID)"), "\(certInfo)")
            #expect(certInfo.stdoutText.contains("Certificate serial number: \(listing.serial)"), "\(certInfo)")
            #expect(certInfo.stdoutText.contains("Valid user names: \(currentUserName)"), "\(certInfo)")
            let embedded = try await sshd.plink(ppk: combined, certificate: nil, home: dir)
            expectLogin(embedded, sshd: sshd)

            // Control: without the certificate PuTTY has no way in.
            let mark = sshd.logMark()
            let bare = try await sshd.plink(ppk: ppk, certificate: nil, home: dir)
            #expect(!bare.succeeded, "plink logged in without a certificate:\n\(bare)")
            #expect(!sshd.log(since: mark).contains("Accepted publickey"))
        }
    }
}

import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
import SSHCrypto
import Authority

/// Acceptance item 5: `sshca host krl-sync` installs only KRLs sshd will accept, never an older
/// one, atomically; a running sshd keeps accepting valid certificates after every refusal, and a
/// newer KRL installed by krl-sync revokes on that sshd.
@Suite("host krl-sync against a running sshd")
struct KRLSyncTests {
    @Test("bad KRLs are refused (65) with the installed file byte-identical and sshd still working; a newer KRL revokes")
    func krlSync() async throws {
        try await withTreeDirectory("krlsync") { dir in
            let ca = try await CAFixture.create(in: dir)
            try ca.setSignKRL(true)
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let setup = try await tree.setup(caKey: ca.userCAPublicKey)
            try #require(setup.succeeded, "\(setup)")
            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }

            let victim = try await makeClientKey(tree.client, "id_victim")
            let keeper = try await makeClientKey(tree.client, "id_keeper")
            try await ca.sign(victim, keyID: "victim", principals: [currentUserName])
            try await ca.sign(keeper, keyID: "keeper", principals: [currentUserName])
            let victimSerial = try await ca.serial(of: victim.certificate)

            func login(_ key: KeyPair) async throws -> ProcessResult {
                try await sshd.ssh(identity: key.privateKey, certificate: key.certificate)
            }
            func expectLogin(_ key: KeyPair, _ phase: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let result = try await login(key)
                #expect(result.succeeded && result.stdoutText == "ok\n",
                        "[\(phase)] \(key.privateKey.lastPathComponent) cannot log in:\n\(result)\n--- sshd log ---\n\(sshd.log)",
                        sourceLocation: sourceLocation)
            }

            // A KRL from the CA (version A): no signature inside (OpenSSH 9.4 dropped them), its
            // detached signature beside it, which ssh-keygen -Y verify accepts; installed with
            // the signer pinned.
            let krlA = dir.child("a.krl")
            try await ca.writeKRL(to: krlA)
            let bytesA = Array(try Data(contentsOf: krlA))
            let parsedA = try KRL.parse(bytesA)
            try #require(parsedA.signatures.isEmpty, "krl write put a signature section inside the KRL")
            let sigA = try readText(URL(fileURLWithPath: krlA.path + ".sig"))
            let verified1 = try await sshKeygenVerify(krl: krlA, signature: URL(fileURLWithPath: krlA.path + ".sig"), caKey: ca.userCAPublicKey, in: dir)
            #expect(verified1.verified, "ssh-keygen -Y verify: \(verified1.result)")
            let installA = try await tree.krlSync(from: krlA, ["--ca-key", ca.userCAPublicKey.path])
            try #require(installA.succeeded, "\(installA)")
            #expect(Array(try Data(contentsOf: tree.krlPath)) == bytesA)
            #expect(!fileExists(URL(fileURLWithPath: tree.krlPath.path + ".sig")), "the signature was installed beside sshd's KRL")
            try await expectLogin(victim, "after installing A")
            try await expectLogin(keeper, "after installing A")

            // The next KRL (version B) revokes the victim's serial.
            try await ca.revoke(["--serial", String(victimSerial)])
            let bytesB = Array(try Data(contentsOf: ca.krlFile))
            let parsedB = try KRL.parse(bytesB)
            let sigB = try readText(URL(fileURLWithPath: ca.krlFile.path + ".sig"))
            try #require(parsedB.krl.version > parsedA.krl.version && parsedB.signatures.isEmpty,
                         "revoke did not publish a newer KRL without a signature section")
            let verified2 = try await sshKeygenVerify(krl: ca.krlFile, signature: URL(fileURLWithPath: ca.krlFile.path + ".sig"), caKey: ca.userCAPublicKey, in: dir)
            #expect(verified2.verified, "ssh-keygen -Y verify: \(verified2.result)")

            // Candidates that must all be refused while A is installed; `signature` is written
            // beside the candidate as FILE.sig.
            var candidates: [(name: String, bytes: [UInt8], signature: String?, pinned: Bool, mentions: [String])] = []
            candidates.append(("corrupt", (0..<400).map { _ in UInt8.random(in: 0...255) }, nil, false, ["krl"]))
            var corruptHeader = bytesB
            corruptHeader[3] ^= 0xFF  // inside the "SSHKRL\n\0" magic
            candidates.append(("corrupt magic", corruptHeader, nil, false, ["krl"]))
            candidates.append(("truncated", Array(bytesB.prefix(bytesB.count / 2)), nil, false, ["krl"]))
            // Detached signatures: each must be by the pinned key, over exactly these bytes.
            var tampered = bytesB
            tampered[tampered.count - 3] ^= 0x01
            candidates.append(("altered after signing", tampered, sigB, true, ["does not verify"]))
            candidates.append(("B with A's signature (a pair that does not belong together)", bytesB, sigA, true, ["does not verify"]))
            candidates.append(("a signature that is not one", bytesB, "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n", true, ["not an ssh signature"]))
            let otherSigner = try PrivateKey.generate(.ed25519)
            candidates.append(("detached signature by another key", bytesB,
                               try DetachedKRLSignature.sign(bytesB, with: OpenSSLSigner(key: otherSigner)), true, ["not signed by the pinned key"]))
            let unsigned = KRL(version: parsedB.krl.version + 10, generatedDate: parsedB.krl.generatedDate, comment: "unsigned",
                               certificates: parsedB.krl.certificates).encoded()
            candidates.append(("unsigned with --ca-key pinned", unsigned, nil, true, ["not signed", "unsigned"]))
            // Signatures inside the KRL (from homes made before detached signatures) are still
            // checked as before.
            let userCAKey = try PrivateKey(pem: try readText(ca.home.child("user_ca.key")), passphrase: nil)
            let legacyB = try parsedB.krl.encoded(signingKey: userCAKey.publicKey) { (bytes: [UInt8]) throws(CryptoError) -> SSHSignature in try userCAKey.sign(bytes) }
            candidates.append(("legacy: truncated inside the signature", Array(legacyB.dropLast(7)), nil, false, ["krl", "signature"]))
            var badSignature = legacyB
            badSignature[badSignature.count - 5] ^= 0x01  // the last bytes are the signature itself
            let reparsed = try KRL.parse(badSignature)
            try #require(reparsed.krl == parsedB.krl && reparsed.signatures.count == 1, "the flipped byte is not inside the signature")
            candidates.append(("legacy: bad signature", badSignature, nil, false, ["signature", "verify"]))
            let rogue = try PrivateKey.generate(.ed25519)
            let selfRevoking = try KRL(version: parsedB.krl.version + 20, generatedDate: parsedB.krl.generatedDate, comment: "self-revoking",
                                       explicitKeys: [rogue.publicKey.blob])
                .encoded(signingKey: rogue.publicKey) { (bytes: [UInt8]) throws(CryptoError) -> SSHSignature in try rogue.sign(bytes) }
            candidates.append(("legacy: signed only by a key it revokes", selfRevoking, nil, false, ["revokes"]))
            let foreign = try KRL(version: parsedB.krl.version + 30, generatedDate: parsedB.krl.generatedDate, comment: "foreign")
                .encoded(signingKey: otherSigner.publicKey) { (bytes: [UInt8]) throws(CryptoError) -> SSHSignature in try otherSigner.sign(bytes) }
            candidates.append(("legacy: validly signed by another key, with --ca-key pinned", foreign, nil, true, ["not signed by the pinned"]))

            // What OpenSSH itself makes of the self-revoking KRL (the reason it must be refused).
            let selfRevokingFile = dir.child("self-revoking.krl")
            try writeData(Data(selfRevoking), to: selfRevokingFile)
            let openssh = try await runProcess("ssh-keygen", ["-Q", "-f", selfRevokingFile.path, keeper.publicKey.path])
            #expect(openssh.exitCode == 255, "ssh-keygen accepts a KRL signed only by a key it revokes:\n\(openssh)")

            for candidate in candidates {
                let file = dir.child("candidate.krl")
                try writeData(Data(candidate.bytes), to: file)
                let signatureFile = URL(fileURLWithPath: file.path + ".sig")
                try? FileManager.default.removeItem(at: signatureFile)
                if let signature = candidate.signature { try writeText(signature, to: signatureFile) }
                let before = try tree.snapshot()
                let result = try await tree.krlSync(from: file, candidate.pinned ? ["--ca-key", ca.userCAPublicKey.path] : [])
                #expect(result.exitCode == 65 && !result.terminatedBySignal, "[\(candidate.name)] not refused with 65:\n\(result)")
                let lowered = result.stderrText.lowercased()
                #expect(candidate.mentions.contains { lowered.contains($0.lowercased()) },
                        "[\(candidate.name)] the error mentions none of \(candidate.mentions):\n\(result)")
                #expect(Array(try Data(contentsOf: tree.krlPath)) == bytesA, "[\(candidate.name)] the installed KRL changed")
                expectIdentical(try tree.snapshot(), before, "krl-sync of \(candidate.name)")
                try await expectLogin(keeper, "after refusing \(candidate.name)")
            }
            try await expectLogin(victim, "after all refusals (A revokes nothing)")

            // The newer KRL B, installed by krl-sync, revokes the victim on the running sshd.
            let krlB = dir.child("b.krl")
            try writeData(Data(bytesB), to: krlB)
            try writeText(sigB, to: URL(fileURLWithPath: krlB.path + ".sig"))
            let installB = try await tree.krlSync(from: krlB, ["--ca-key", ca.userCAPublicKey.path])
            #expect(installB.succeeded, "\(installB)")
            #expect(Array(try Data(contentsOf: tree.krlPath)) == bytesB, "B is not installed byte for byte")
            let mark = sshd.logMark()
            let revoked = try await login(victim)
            #expect(!revoked.succeeded, "the revoked certificate (serial \(victimSerial)) still logs in:\n\(revoked)")
            #expect(sshd.log(since: mark).contains("revoked by file \(tree.krlPath.path)"), "sshd did not refuse it for revocation:\n\(sshd.log(since: mark))")
            try await expectLogin(keeper, "after installing B")

            // Rolling back to A (older krl_version) is refused.
            let beforeRollback = try tree.snapshot()
            let rollback = try await tree.krlSync(from: krlA, ["--ca-key", ca.userCAPublicKey.path])
            #expect(rollback.exitCode == 65, "an older KRL was not refused with 65:\n\(rollback)")
            #expect(rollback.stderrText.lowercased().contains("older"), "\(rollback)")
            #expect(Array(try Data(contentsOf: tree.krlPath)) == bytesB, "the rollback replaced the installed KRL")
            expectIdentical(try tree.snapshot(), beforeRollback, "krl-sync of an older KRL")
            #expect(!(try await login(victim)).succeeded, "the victim logs in again after the refused rollback")
            try await expectLogin(keeper, "after refusing the rollback")

            // The same file again: nothing to do, exit 0.
            let again = try await tree.krlSync(from: krlB, ["--ca-key", ca.userCAPublicKey.path])
            let installedAgain = Array(try Data(contentsOf: tree.krlPath))
            #expect(again.succeeded && installedAgain == bytesB, "\(again)")
        }
    }
}


import Common
import Foundation
import Testing
import TestSupport

@Suite("CA keys held in a real ssh-agent")
struct AgentTests {
    enum AgentCA: String, CaseIterable, Sendable, CustomStringConvertible {
        case ed25519, rsa3072 = "rsa-3072"
        var description: String { rawValue }
        var sshKeygenArguments: [String] { self == .ed25519 ? ["-t", "ed25519"] : ["-t", "rsa", "-b", "3072"] }
        var acceptableSignatureAlgorithms: Set<String> {
            self == .ed25519 ? ["ssh-ed25519"] : ["rsa-sha2-512", "rsa-sha2-256"]
        }
    }

    @Test("--user-ca-in-agent: signing goes through ssh-agent, and fails cleanly without the key", arguments: AgentCA.allCases)
    func signsWithCAKeyInAgent(ca: AgentCA) async throws {
        try await withTemporaryDirectory { dir in
            let caKey = try await Fixtures.plainKey("agent-ca-\(ca.rawValue)", ca.sshKeygenArguments)
                .copy(to: dir, name: "agent_ca")
            let home = dir.child("agent-home")
            let initResult = try await sshcaInit(
                home: home, keyType: nil, extra: ["--no-passphrase", "--user-ca-in-agent", caKey.publicKey.path])
            try #require(initResult.succeeded, "\(initResult)")
            #expect(!fileExists(home.child("user_ca.key")), "an agent-held CA must not have a key file")
            #expect(
                keyTypeAndBlob(try readText(home.child("user_ca.pub"))) == keyTypeAndBlob(try readText(caKey.publicKey)),
                "user_ca.pub is not the agent key")

            let agent = try await SSHAgent.start(in: dir.child("agent"))
            defer { agent.stop() }
            let keysDir = dir.child("keys")
            try FileManager.default.createDirectory(at: keysDir, withIntermediateDirectories: true)
            let user = try await Fixtures.copyUserKey(.ed25519, into: keysDir, name: "id_user")
            let signArgs = ["--key-id", "via agent \(ca)", "--principals", currentUserName]

            // The agent runs but does not hold the CA key.
            let before = try DirectorySnapshot(keysDir)
            let missing = try await sshcaSign(home: home, signArgs, publicKey: user.publicKey, environment: agent.environment)
            expectFailure(missing, exitCodes: [1], mentions: ["agent"])
            #expect(try DirectorySnapshot(keysDir) == before, "files changed after a failed sign")

            // No agent at all.
            let noAgent = try await sshcaSign(home: home, signArgs, publicKey: user.publicKey, environment: ["SSH_AUTH_SOCK": nil])
            expectFailure(noAgent, exitCodes: [1], mentions: ["agent", "SSH_AUTH_SOCK"])
            #expect(try DirectorySnapshot(keysDir) == before, "files changed after a failed sign")

            let added = try await agent.sshAdd([caKey.privateKey.path])
            try #require(added.succeeded, "\(added)")

            let signed = try await sshcaSign(home: home, signArgs, publicKey: user.publicKey, environment: agent.environment)
            try #require(signed.succeeded, "\(signed)")
            let listing = try await SSHKeygen.listCertificate(user.certificate)
            #expect(listing.signingCAFingerprint == (try await SSHKeygen.fingerprint(caKey.publicKey)), "\(listing.raw)")
            #expect(ca.acceptableSignatureAlgorithms.contains(listing.signatureAlgorithm), "\(listing.raw)")
            let (info, inspectResult) = try await SSHCA.inspect(user.certificate)
            #expect(inspectResult.exitCode == 0 && info.signatureValid, "\(inspectResult)")
            let py = try await VerifyScript.run(certificate: user.certificate, caPublicKey: caKey.publicKey)
            #expect(py.succeeded, "\(py)")

            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: caKey.publicKey)
            defer { sshd.stop() }
            expectLogin(try await sshd.ssh(identity: user.privateKey, certificate: user.certificate), sshd: sshd)
        }
    }

    @Test(
        "ca-key --export-private feeds ssh-add, and a home made from ca-key signs through the agent",
        arguments: [CAKeyType.ed25519, .ecdsaP256, .rsa3072])
    func exportedCAKeyWorksInAgent(caType: CAKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(caType, into: dir)
            let userCAPub = keyTypeAndBlob(try readText(home.child("user_ca.pub")))

            let exported = try await SSHCA.run(["ca-key", "--export-private", "--home", home.path])
            try #require(exported.succeeded, "\(exported)")
            #expect(exported.stdoutText.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----"), "\(exported.stdoutText.prefix(60))")
            // ssh-keygen reads the export and derives the same public key.
            let exportFile = dir.child("exported_user_ca")
            try writeData(exported.stdout, to: exportFile, mode: 0o600)
            let derived = try await runChecked("ssh-keygen", ["-y", "-f", exportFile.path])
            #expect(keyTypeAndBlob(derived.stdoutText) == userCAPub)

            let exportedHost = try await SSHCA.run(["ca-key", "--export-private", "--host", "--home", home.path])
            try #require(exportedHost.succeeded, "\(exportedHost)")
            let hostFile = dir.child("exported_host_ca")
            try writeData(exportedHost.stdout, to: hostFile, mode: 0o600)
            let derivedHost = try await runChecked("ssh-keygen", ["-y", "-f", hostFile.path])
            #expect(keyTypeAndBlob(derivedHost.stdoutText) == keyTypeAndBlob(try readText(home.child("host_ca.pub"))))

            let agent = try await SSHAgent.start(in: dir.child("agent"))
            defer { agent.stop() }
            let added = try await agent.sshAdd(["-"], stdin: exported.stdout)
            try #require(added.succeeded, "ssh-add - refused the export:\n\(added)")
            let listed = try await agent.sshAdd(["-L"])
            #expect(listed.stdoutText.split(separator: "\n").map { keyTypeAndBlob(String($0)) }.contains(userCAPub), "\(listed)")

            let caKeyLine = try await SSHCA.run(["ca-key", "--home", home.path])
            try #require(caKeyLine.succeeded, "\(caKeyLine)")
            let caPubFile = dir.child("ca.pub")
            try writeData(caKeyLine.stdout, to: caPubFile)
            let agentHome = dir.child("agent-home")
            let initResult = try await sshcaInit(
                home: agentHome, keyType: nil, extra: ["--no-passphrase", "--user-ca-in-agent", caPubFile.path])
            try #require(initResult.succeeded, "\(initResult)")

            let user = try await Fixtures.copyUserKey(.ecdsa384, into: dir, name: "id_user")
            let cert = try await signForLogin(home: agentHome, key: user, keyID: "agent \(caType)", environment: agent.environment)
            let listing = try await SSHKeygen.listCertificate(cert)
            #expect(listing.signingCAFingerprint == (try await SSHKeygen.fingerprint(home.child("user_ca.pub"))), "\(listing.raw)")
            #expect(caType.acceptableSignatureAlgorithms.contains(listing.signatureAlgorithm), "\(listing.raw)")
            let (info, inspectResult) = try await SSHCA.inspect(cert)
            #expect(inspectResult.exitCode == 0 && info.signatureValid, "\(inspectResult)")

            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }
            expectLogin(try await sshd.ssh(identity: user.privateKey, certificate: cert), sshd: sshd)
        }
    }
}

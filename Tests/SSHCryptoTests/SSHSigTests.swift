import Foundation
import Testing
import TestSupport
import SSHCrypto
import SSHFormat

/// SSHSIG (PROTOCOL.sshsig) signatures made by the real `ssh-keygen -Y sign`, from key files, from
/// FIDO keys (sk-dummy) and through a real ssh-agent, verified by sshca; and sshca's armored
/// form read back by `ssh-keygen -Y check-novalidate`.
@Suite("SSHSIG signatures from ssh-keygen -Y sign")
struct SSHSigTests {
    static let message = Array("a challenge from the CA: 6f1c0b2e\n".utf8)

    /// Signs `message` with ssh-keygen and returns the armored signature.
    static func sign(_ dir: TempDir, key: String, namespace: String = "sshca", environment: [String: String?] = [:]) throws -> String {
        let file = try dir.write("message-\(Files.unique())", Data(message))
        var arguments = ["-Y", "sign", "-f", dir.file(key), "-n", namespace]
        if key.hasPrefix("sk") { arguments += ["-w", skDummyProvider] }
        try run("ssh-keygen", arguments + [file], environment: environment)
        return try String(decoding: Data(contentsOf: URL(fileURLWithPath: file + ".sig")), as: UTF8.self)
    }

    @Test("ssh-keygen's signatures verify; namespace, message and signature tampering do not",
          arguments: [("ed25519", "ed25519", nil), ("ecdsa", "ecdsa", 256), ("rsa", "rsa", 2048),
                      ("sk-ed", "ed25519-sk", nil), ("sk-ecdsa", "ecdsa-sk", nil)] as [(String, String, Int?)])
    func verifies(name: String, type: String, bits: Int?) throws {
        let dir = try TempDir()
        let line = try sshKeygenKey(in: dir, name: name, type: type, bits: bits)
        let key = try PublicKeyText(parsing: line).key
        let signature = try SSHSig(armored: try Self.sign(dir, key: name))
        #expect(signature.publicKey == key)
        #expect(signature.namespace == "sshca")
        if case .rsa = key { #expect(signature.signature.algorithm == "rsa-sha2-512") }
        if key.isSecurityKey { #expect(signature.signature.securityKey?.userPresent == true) }
        #expect(signature.verify(message: Self.message, namespace: "sshca") == .valid)

        #expect(!signature.verify(message: Self.message, namespace: "file").isValid)
        #expect(!signature.verify(message: Self.message + [0x21], namespace: "sshca").isValid)
        var flipped = Array(signature.signature.bytes)
        flipped[flipped.count / 2] ^= 0x01
        var tampered = signature
        tampered.signature.bytes = Data(flipped)
        #expect(!tampered.verify(message: Self.message, namespace: "sshca").isValid)

        // Our armored writer is read by ssh-keygen: the blob round-trips byte for byte.
        #expect(try SSHSig(armored: signature.armored) == signature)
        let ours = try dir.write("ours-\(name).sig", signature.armored)
        let checked = try run("ssh-keygen", ["-Y", "check-novalidate", "-n", "sshca", "-s", ours], stdin: Data(Self.message), check: false)
        #expect(checked.status == 0, "\(checked)")
    }

    @Test("a security-key signature without the user's touch is refused")
    func userPresenceRequired() throws {
        let dir = try TempDir()
        _ = try sshKeygenKey(in: dir, name: "sk-touch", type: "ed25519-sk")
        var signature = try SSHSig(armored: try Self.sign(dir, key: "sk-touch"))
        signature.signature.securityKey?.flags = 0
        let verdict = signature.verify(message: Self.message, namespace: "sshca")
        #expect(verdict == .invalid("the security key signed without the user's touch"))
    }

    @Test("a signature made through a real ssh-agent verifies")
    func throughAgent() throws {
        let agent = try TestAgent()
        defer { agent.stop() }
        let dir = try TempDir()
        let line = try sshKeygenKey(in: dir, name: "agent-key", type: "ed25519")
        try run("ssh-add", [dir.file("agent-key")], environment: ["SSH_AUTH_SOCK": agent.socketPath])
        // With only the public key given, ssh-keygen asks the agent to sign.
        let file = try dir.write("agent-message", Data(Self.message))
        try run("ssh-keygen", ["-Y", "sign", "-f", dir.file("agent-key.pub"), "-n", "sshca", file],
                environment: ["SSH_AUTH_SOCK": agent.socketPath])
        let signature = try SSHSig(armored: String(decoding: Data(contentsOf: URL(fileURLWithPath: file + ".sig")), as: UTF8.self))
        #expect(signature.publicKey == (try PublicKeyText(parsing: line).key))
        #expect(signature.verify(message: Self.message, namespace: "sshca") == .valid)
    }

    @Test("malformed signatures are errors, never crashes")
    func malformed() throws {
        let dir = try TempDir()
        _ = try sshKeygenKey(in: dir, name: "ed", type: "ed25519")
        let blob = Array(try SSHSig(armored: try Self.sign(dir, key: "ed")).blob)
        for length in 0..<blob.count {
            #expect(throws: SSHFormatError.self) { try SSHSig(blob: blob.prefix(length)) }
        }
        #expect(throws: SSHFormatError.self) { try SSHSig(blob: blob + [0]) }
        #expect(throws: SSHFormatError.self) { try SSHSig(armored: "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n") }
        #expect(throws: SSHFormatError.self) { try SSHSig(armored: "not a signature") }
    }
}

private enum Files {
    static func unique() -> String { UUID().uuidString }
}

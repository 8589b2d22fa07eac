import Foundation
import Testing
import TestSupport
import SSHCrypto
import SSHFormat

@Suite("OpenSSH private key export")
struct OpenSSHExportTests {
    /// ssh-keygen reads the exported file, derives the same public key, and can sign with it: the
    /// signature verifying under our public key proves the private fields are right too.
    @Test("ssh-keygen reads and signs with the exported key", arguments: CAKeyType.allCases)
    func sshKeygenReadsExport(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let text = try key.components().openSSHPrivateKeyFile(comment: "exported \(type.rawValue)", checkInt: 0x1234_5678)
        #expect(text.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----\n"))
        #expect(text.hasSuffix("-----END OPENSSH PRIVATE KEY-----\n"))
        #expect(text.split(separator: "\n").allSatisfy { $0.count <= 70 })
        let dir = try TempDir()
        let path = try dir.write("id", text, mode: 0o600)

        let derived = try run("ssh-keygen", ["-y", "-f", path]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(derived == key.publicKey.openSSHLine(comment: "exported \(type.rawValue)"))
        let fingerprint = try run("ssh-keygen", ["-l", "-f", path]).stdoutText
        #expect(fingerprint.contains(key.publicKey.fingerprint))

        // Use the exported key as a CA with ssh-keygen -s.
        _ = try sshKeygenKey(in: dir, name: "user", type: "ed25519")
        try run("ssh-keygen", ["-q", "-s", path, "-I", "signed with export", "-n", "alice", dir.file("user.pub")])
        let certificate = try Certificate(parsingText: dir.readText("user-cert.pub"))
        #expect(certificate.body.signatureKey == key.publicKey)
        #expect(certificate.verifySignature() == .valid)
    }

    @Test func exportLayoutFollowsPROTOCOLkey() throws {
        let key = SharedKeys.ecdsaP256
        let text = try key.components().openSSHPrivateKeyFile(comment: "c", checkInt: 0xdead_beef)
        let base64 = text.split(separator: "\n").dropFirst().dropLast().joined()
        let bytes = try #require(Data(base64Encoded: base64))
        let magic = Array("openssh-key-v1".utf8) + [0]
        #expect(Array(bytes.prefix(magic.count)) == magic)
        var r = SSHReader(bytes.dropFirst(magic.count))
        #expect(try r.readText("cipher") == "none")
        #expect(try r.readText("kdf") == "none")
        #expect(try r.readString() == [])
        #expect(try r.readUInt32() == 1)
        #expect(try r.readString() == Array(key.publicKey.blob))
        let privateSection = try r.readString()
        #expect(r.isAtEnd)
        #expect(privateSection.count % 8 == 0)
        var p = SSHReader(privateSection)
        #expect(try p.readUInt32() == 0xdead_beef)
        #expect(try p.readUInt32() == 0xdead_beef)
        #expect(try p.readText("type") == "ecdsa-sha2-nistp256")
        #expect(try p.readText("curve") == "nistp256")
        #expect(try p.readString().count == 65)
        let scalar = try p.readUnsignedMPInt()
        #expect(scalar.count <= 32 && !scalar.isEmpty)
        #expect(try p.readText("comment") == "c")
        let padding = try p.readBytes(p.remaining)
        #expect(padding.count < 8)
        #expect(padding == (0..<padding.count).map { UInt8($0 + 1) })
    }

    @Test func componentsMatchThePublicKey() throws {
        for type in CAKeyType.allCases {
            let key = SharedKeys.key(type)
            let components = try key.components()
            #expect(components.publicKey == key.publicKey)
            switch components {
            case .ed25519(let seed, _): #expect(seed.count == 32)
            case .ecdsa(let curve, _, let scalar): #expect(scalar.count <= curve.coordinateByteCount)
            case .rsa(let n, _, let d, let iqmp, let p, let q):
                #expect(d.count <= n.count && !d.isEmpty)
                #expect(p.count + q.count <= n.count + 1)
                #expect(!iqmp.isEmpty)
            }
        }
    }
}

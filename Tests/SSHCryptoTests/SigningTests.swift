import Foundation
import Testing
import TestSupport
import SSHCrypto
import SSHFormat

@Suite("Signing and verification")
struct SigningTests {
    static func expectedAlgorithm(_ type: CAKeyType) -> String {
        switch type {
        case .ed25519: return "ssh-ed25519"
        case .ecdsaP256: return "ecdsa-sha2-nistp256"
        case .ecdsaP384: return "ecdsa-sha2-nistp384"
        case .ecdsaP521: return "ecdsa-sha2-nistp521"
        case .rsa3072, .rsa4096: return "rsa-sha2-512"
        }
    }

    @Test("sign and verify", arguments: CAKeyType.allCases)
    func signAndVerify(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let data = Array("the bytes a CA signs".utf8)
        let signature = try key.sign(data)
        #expect(signature.algorithm == Self.expectedAlgorithm(type))
        #expect(key.signatureAlgorithm == Self.expectedAlgorithm(type))
        #expect(key.publicKey.verify(signature, over: data) == .valid)
        #expect(key.publicKey.verify(signature, over: Data(data)) == .valid)

        // Other data.
        #expect(!key.publicKey.verify(signature, over: data + [0]).isValid)
        #expect(!key.publicKey.verify(signature, over: [UInt8]()).isValid)
        var changed = data
        changed[0] ^= 0x20
        #expect(!key.publicKey.verify(signature, over: changed).isValid)

        // Flipped bits anywhere in the signature.
        let bytes = Array(signature.bytes)
        for position in Set([0, 5, bytes.count / 2, bytes.count - 1]) {
            for bit in [0, 7] {
                var flipped = bytes
                flipped[position] ^= UInt8(1 << bit)
                let verdict = key.publicKey.verify(SSHSignature(algorithm: signature.algorithm, bytes: Data(flipped)), over: data)
                #expect(!verdict.isValid, "bit \(bit) of byte \(position)")
            }
        }
        // Truncated or empty signature bytes.
        #expect(!key.publicKey.verify(SSHSignature(algorithm: signature.algorithm, bytes: Data(bytes.dropLast())), over: data).isValid)
        #expect(!key.publicKey.verify(SSHSignature(algorithm: signature.algorithm, bytes: Data()), over: data).isValid)
        // The wrong algorithm name.
        #expect(!key.publicKey.verify(SSHSignature(algorithm: "ssh-foo", bytes: signature.bytes), over: data).isValid)
    }

    @Test("a signature does not verify under another key of the same type", arguments: CAKeyType.allCases)
    func otherKeyDoesNotVerify(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let other: PrivateKey = switch type {
        case .rsa3072: SharedKeys.rsa4096
        case .rsa4096: SharedKeys.rsa3072
        default: try PrivateKey.generate(type)
        }
        let data = Array("hello".utf8)
        let signature = try key.sign(data)
        #expect(!other.publicKey.verify(signature, over: data).isValid)
    }

    @Test func rsaSignaturesAreSHA512AndModulusSized() throws {
        for (key, size) in [(SharedKeys.rsa3072, 384), (SharedKeys.rsa4096, 512)] {
            let data = Array("rsa".utf8)
            let signature = try key.sign(data)
            #expect(signature.algorithm == "rsa-sha2-512")
            #expect(signature.bytes.count == size)
            // The same PKCS#1 bytes labelled SHA-256 or SHA-1 do not pass.
            #expect(!key.publicKey.verify(SSHSignature(algorithm: "rsa-sha2-256", bytes: signature.bytes), over: data).isValid)
            let sha1 = key.publicKey.verify(SSHSignature(algorithm: "ssh-rsa", bytes: signature.bytes), over: data)
            guard case .unsupported = sha1 else { Issue.record("ssh-rsa gave \(sha1)"); continue }
        }
    }

    @Test func ed25519SignaturesAreDeterministicAndECDSAAreNot() throws {
        let data = Array("same input".utf8)
        #expect(try SharedKeys.ed25519.sign(data) == SharedKeys.ed25519.sign(data))
        #expect(try SharedKeys.ecdsaP256.sign(data) != SharedKeys.ecdsaP256.sign(data))
        // ECDSA signature bytes are two minimal mpints, r and s.
        let sig = try SharedKeys.ecdsaP521.sign(data)
        var r = SSHReader(sig.bytes)
        let rValue = try r.readUnsignedMPInt()
        let sValue = try r.readUnsignedMPInt()
        #expect(r.isAtEnd)
        #expect(rValue.count <= 66 && sValue.count <= 66)
    }

    /// Security-key signatures are checked (SSHSigTests verifies real ones); malformed ones fail.
    @Test func malformedSecurityKeySignaturesAreInvalid() throws {
        let sk = PublicKey.skEd25519(publicKey: Data(repeating: 1, count: 32), application: "ssh:")
        // No flags and counter after the signature: not an sk- signature at all.
        let bare = sk.verify(SSHSignature(algorithm: "sk-ssh-ed25519@openssh.com", bytes: Data(count: 64)), over: [1])
        guard case .invalid = bare else { Issue.record("got \(bare)"); return }
        // Well-formed but made by no key.
        let fields = SSHSignature.SecurityKeyFields(flags: 1, counter: 7)
        let forged = sk.verify(SSHSignature(algorithm: "sk-ssh-ed25519@openssh.com", bytes: Data(count: 64), securityKey: fields), over: [1])
        guard case .invalid = forged else { Issue.record("got \(forged)"); return }
        // An sk- signature from a plain key's point of view is the wrong algorithm.
        let plain = PublicKey.ed25519(Data(repeating: 1, count: 32))
            .verify(SSHSignature(algorithm: "sk-ssh-ed25519@openssh.com", bytes: Data(count: 64), securityKey: fields), over: [1])
        guard case .invalid = plain else { Issue.record("got \(plain)"); return }
    }

    // MARK: cross-checks with OpenSSH

    /// ssh-keygen -L checks the CA signature when it loads a certificate, so it accepting ours and
    /// refusing a tampered copy shows our signatures are what OpenSSH expects.
    @Test("ssh-keygen accepts certificates we sign and refuses tampered ones", arguments: CAKeyType.allCases)
    func sshKeygenAcceptsOurSignatures(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let body = sampleBody(ca: key.publicKey, keyID: "signed by \(type.rawValue)")
        let signable = body.signableBytes()
        let certificate = Certificate(body: body, signableBytes: signable, signature: try key.sign(signable))
        #expect(certificate.verifySignature() == .valid)
        let dir = try TempDir()
        let path = try dir.write("cert.pub", certificate.openSSHLine(comment: "c") + "\n")
        let listing = try run("ssh-keygen", ["-L", "-f", path]).stdoutText
        #expect(listing.contains("Signing CA: \(key.publicKey.shortName) \(key.publicKey.fingerprint) (using \(Self.expectedAlgorithm(type)))"))
        #expect(listing.contains("Key ID: \"signed by \(type.rawValue)\""))

        var tampered = Array(certificate.bytes)
        tampered[tampered.count - 10] ^= 0x01
        let badPath = try dir.write("bad-cert.pub", "\(body.typeName) \(Data(tampered).base64EncodedString())\n")
        let refused = try run("ssh-keygen", ["-L", "-f", badPath], check: false)
        #expect(refused.status != 0)
        let parsed = try Certificate(blob: tampered)
        #expect(!parsed.verifySignature().isValid)
    }

    @Test("certificates signed by ssh-keygen verify", arguments: [
        ("ed25519", nil as Int?, nil as String?), ("ecdsa", 256, nil), ("ecdsa", 384, nil), ("ecdsa", 521, nil),
        ("rsa", 2048, "rsa-sha2-512"), ("rsa", 2048, "rsa-sha2-256"),
    ])
    func sshKeygenSignaturesVerify(caType: String, bits: Int?, algorithm: String?) throws {
        let dir = try TempDir()
        _ = try sshKeygenKey(in: dir, name: "ca", type: caType, bits: bits)
        _ = try sshKeygenKey(in: dir, name: "user", type: "ed25519")
        var args = ["-q", "-s", dir.file("ca"), "-I", "by openssh", "-n", "alice", "-z", "9"]
        if let algorithm { args += ["-t", algorithm] }
        try run("ssh-keygen", args + [dir.file("user.pub")])
        let certificate = try Certificate(parsingText: dir.readText("user-cert.pub"))
        if let algorithm { #expect(certificate.signature.algorithm == algorithm) }
        #expect(certificate.verifySignature() == .valid)
        // A changed field breaks the signature.
        var body = certificate.body
        body.serial = 10
        #expect(!Certificate(body: body, signature: certificate.signature).verifySignature().isValid)
        body = certificate.body
        body.principals = ["root"]
        #expect(!Certificate(body: body, signature: certificate.signature).verifySignature().isValid)
    }

    @Test func sha1RSACertificateSignaturesAreReportedUnsupported() throws {
        let dir = try TempDir()
        _ = try sshKeygenKey(in: dir, name: "ca", type: "rsa", bits: 2048)
        _ = try sshKeygenKey(in: dir, name: "user", type: "ed25519")
        try run("ssh-keygen", ["-q", "-s", dir.file("ca"), "-t", "ssh-rsa", "-I", "sha1", "-n", "alice", dir.file("user.pub")])
        let certificate = try Certificate(parsingText: dir.readText("user-cert.pub"))
        #expect(certificate.signature.algorithm == "ssh-rsa")
        guard case .unsupported(let why) = certificate.verifySignature() else {
            Issue.record("SHA-1 signature not flagged: \(certificate.verifySignature())"); return
        }
        #expect(why.contains("SHA-1"))
    }

    // MARK: concurrency

    /// Many tasks share one PrivateKey: each signature comes from a pooled libcrypto context, and
    /// every one must verify over its own message (and not over another task's).
    @Test(arguments: [CAKeyType.ed25519, .ecdsaP384, .rsa3072])
    func concurrentSigningFromManyTasks(type: CAKeyType) async throws {
        let key = SharedKeys.key(type)
        let count = type == .rsa3072 ? 48 : 200
        let signatures = try await withThrowingTaskGroup(of: (Int, SSHSignature).self) { group in
            for i in 0..<count {
                group.addTask { (i, try key.sign(Array("message number \(i)".utf8))) }
            }
            var all: [Int: SSHSignature] = [:]
            for try await (i, signature) in group { all[i] = signature }
            return all
        }
        #expect(signatures.count == count)
        for (i, signature) in signatures {
            #expect(key.publicKey.verify(signature, over: Array("message number \(i)".utf8)) == .valid)
            #expect(!key.publicKey.verify(signature, over: Array("message number \(i + 1)".utf8)).isValid)
        }
    }

    @Test func signersShareTheKeysPublicHalf() throws {
        let signer = OpenSSLSigner(key: SharedKeys.ecdsaP256)
        #expect(signer.publicKey == SharedKeys.ecdsaP256.publicKey)
        let signature = try signer.sign([1, 2, 3])
        #expect(signer.publicKey.verify(signature, over: [1, 2, 3]) == .valid)
    }

    // MARK: randomness

    @Test func secureRandomGivesDistinctValues() {
        let a = SecureRandom.bytes(32), b = SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32)
        #expect(a != b)
        #expect(SecureRandom.bytes(0).isEmpty)
        let big = SecureRandom.bytes(1 << 20)
        #expect(big.count == 1 << 20)
        // Every byte value shows up in a megabyte of random data.
        #expect(Set(big).count == 256)
        let values = (0..<2000).map { _ in SecureRandom.uint64() }
        #expect(Set(values).count == values.count)
        // Both halves of the 64 bits are used.
        #expect(values.contains { $0 >> 63 == 1 })
        #expect(values.contains { $0 & 1 == 1 })
    }
}

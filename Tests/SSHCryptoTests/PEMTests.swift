import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import SSHCrypto
import SSHFormat

@Suite("Private keys as PEM")
struct PEMTests {
    static let cheap = ScryptCost(n: 1 << 10, r: 8, p: 1)

    @Test("unencrypted PKCS#8 round trip", arguments: CAKeyType.allCases)
    func unencryptedRoundTrip(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let pem = try key.pem(passphrase: nil)
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(pem.hasSuffix("-----END PRIVATE KEY-----\n"))
        #expect(!PrivateKey.isEncrypted(pem: pem))
        let loaded = try PrivateKey(pem: pem, passphrase: nil)
        #expect(loaded.publicKey == key.publicKey)
        // The reloaded private half signs for the original public half.
        let signature = try loaded.sign([1, 2, 3])
        #expect(key.publicKey.verify(signature, over: [1, 2, 3]) == .valid)
        // A passphrase given for an unencrypted key is ignored.
        #expect(try PrivateKey(pem: pem, passphrase: Array("whatever".utf8)).publicKey == key.publicKey)
    }

    @Test("encrypted PKCS#8 round trip and passphrase errors", arguments: CAKeyType.allCases)
    func encryptedRoundTrip(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let passphrase = Array("correct horse battery".utf8)
        let pem = try key.pem(passphrase: passphrase, cost: Self.cheap)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"))
        #expect(PrivateKey.isEncrypted(pem: pem))
        #expect(try PrivateKey(pem: pem, passphrase: passphrase).publicKey == key.publicKey)
        #expect(cryptoError { _ = try PrivateKey(pem: pem, passphrase: Array("correct horse battery!".utf8)) }?.code == .wrongPassphrase)
        #expect(cryptoError { _ = try PrivateKey(pem: pem, passphrase: Array("x".utf8)) }?.code == .wrongPassphrase)
        let missing = cryptoError { _ = try PrivateKey(pem: pem, passphrase: nil) }
        #expect(missing?.code == .passphraseRequired)
        #expect(missing?.reason.contains("passphrase") == true)
        // Two encryptions of one key differ (fresh salt and IV).
        #expect(try key.pem(passphrase: passphrase, cost: Self.cheap) != pem)
    }

    /// The default-cost encrypted file is standard PKCS#8 (PBES2, scrypt, AES-256-CBC) that the
    /// openssl tool decrypts with the same passphrase.
    @Test(arguments: [CAKeyType.ed25519, .ecdsaP256, .rsa3072])
    func encryptedPEMIsReadableByOpenSSL(type: CAKeyType) throws {
        let key = SharedKeys.key(type)
        let dir = try TempDir()
        let passphrase = "a passphrase with spaces"
        let passFile = try dir.write("pass", passphrase + "\n")
        let encrypted = try dir.write("key.pem", try key.pem(passphrase: Array(passphrase.utf8)))
        try run("openssl", ["pkey", "-in", encrypted, "-passin", "file:\(passFile)", "-out", dir.file("plain.pem")])
        let plain = try dir.readText("plain.pem")
        #expect(plain.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(try PrivateKey(pem: plain, passphrase: nil).publicKey == key.publicKey)
        let structure = try run("openssl", ["asn1parse", "-in", encrypted]).stdoutText
        #expect(structure.contains(":PBES2"))
        #expect(structure.contains(":scrypt"))
        #expect(structure.contains(":aes-256-cbc"))
        // scrypt parameters: N = 2^14, r = 8, p = 4 (ScryptCost.standard).
        #expect(structure.contains("INTEGER           :4000"))
        // openssl with the wrong passphrase fails.
        let wrong = try dir.write("wrong", "not it\n")
        #expect(try run("openssl", ["pkey", "-in", encrypted, "-passin", "file:\(wrong)", "-noout"], check: false).status != 0)
    }

    @Test func keysMadeByOpenSSLAreRead() throws {
        let dir = try TempDir()
        try run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", dir.file("p384.pem")])
        try run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", dir.file("p256-traditional.pem")])
        try run("openssl", ["ecparam", "-name", "secp521r1", "-genkey", "-noout", "-out", dir.file("p521-traditional.pem")])
        try run("openssl", ["genrsa", "-traditional", "-out", dir.file("rsa-traditional.pem"), "2048"])
        try run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", dir.file("ed25519.pem")])
        try run("openssl", ["pkcs8", "-topk8", "-in", dir.file("p384.pem"), "-out", dir.file("p384-enc.pem"), "-passout", "pass:openssl-pass"])

        #expect(try dir.readText("p256-traditional.pem").hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
        #expect(try dir.readText("rsa-traditional.pem").hasPrefix("-----BEGIN RSA PRIVATE KEY-----"))
        // ssh-keygen derives the same public key from the RSA and ECDSA files.
        for file in ["p384.pem", "p256-traditional.pem", "p521-traditional.pem", "rsa-traditional.pem"] {
            let key = try PrivateKey(pem: dir.readText(file), passphrase: nil)
            chmod(dir.file(file), 0o600)
            let line = try run("ssh-keygen", ["-y", "-f", dir.file(file)]).stdoutText
            let fields = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
            #expect(key.publicKey.openSSHLine() == "\(fields[0]) \(fields[1])", "\(file)")
            #expect(try key.publicKey.verify(key.sign([7]), over: [7]) == .valid)
        }
        // Ed25519: the raw public key is the last 32 bytes of the SPKI DER openssl prints.
        let spki = try run("openssl", ["pkey", "-in", dir.file("ed25519.pem"), "-pubout", "-outform", "DER"]).stdout
        let ed = try PrivateKey(pem: dir.readText("ed25519.pem"), passphrase: nil)
        #expect(ed.publicKey == .ed25519(spki.suffix(32)))
        // Encrypted by openssl (PBKDF2 + AES-256-CBC by default).
        let enc = try dir.readText("p384-enc.pem")
        #expect(PrivateKey.isEncrypted(pem: enc))
        let p384 = try PrivateKey(pem: enc, passphrase: Array("openssl-pass".utf8))
        #expect(p384.publicKey == (try PrivateKey(pem: dir.readText("p384.pem"), passphrase: nil)).publicKey)
        #expect(cryptoError { _ = try PrivateKey(pem: enc, passphrase: Array("nope".utf8)) }?.code == .wrongPassphrase)
    }

    @Test func unsuitablePrivateKeysAreRefused() throws {
        let dir = try TempDir()
        try run("openssl", ["genrsa", "-out", dir.file("rsa1024.pem"), "1024"])
        try run("openssl", ["ecparam", "-name", "secp256k1", "-genkey", "-noout", "-out", dir.file("k1.pem")])
        let weak = cryptoError { _ = try PrivateKey(pem: dir.readText("rsa1024.pem"), passphrase: nil) }
        #expect(weak?.code == .weakKey)
        #expect(weak?.reason.contains("1024") == true)
        let k1 = cryptoError { _ = try PrivateKey(pem: dir.readText("k1.pem"), passphrase: nil) }
        #expect(k1?.code == .unsupportedKey)
        #expect(cryptoError { _ = try PrivateKey(pem: "not a key", passphrase: nil) }?.code == .unsupportedKey)
        let truncated = String(try SharedKeys.ecdsaP256.pem(passphrase: nil).dropLast(60))
        #expect(cryptoError { _ = try PrivateKey(pem: truncated, passphrase: nil) } != nil)
        // A public key is not a private key.
        let pub = try run("openssl", ["pkey", "-in", dir.file("rsa1024.pem"), "-pubout"]).stdoutText
        #expect(cryptoError { _ = try PrivateKey(pem: pub, passphrase: nil) } != nil)
    }

    @Test func isEncryptedLooksAtTheStructure() throws {
        #expect(!PrivateKey.isEncrypted(pem: ""))
        #expect(PrivateKey.isEncrypted(pem: try SharedKeys.ed25519.pem(passphrase: Array("12345678".utf8), cost: Self.cheap)))
        #expect(!PrivateKey.isEncrypted(pem: try SharedKeys.ed25519.pem(passphrase: nil)))
    }
}

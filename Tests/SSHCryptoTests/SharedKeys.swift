import Foundation
import TestSupport
import SSHCrypto
import SSHFormat

/// CA keys generated once per run (RSA generation is slow); each static is made on first use.
enum SharedKeys {
    static let ed25519 = try! PrivateKey.generate(.ed25519)
    static let ecdsaP256 = try! PrivateKey.generate(.ecdsaP256)
    static let ecdsaP384 = try! PrivateKey.generate(.ecdsaP384)
    static let ecdsaP521 = try! PrivateKey.generate(.ecdsaP521)
    static let rsa3072 = try! PrivateKey.generate(.rsa3072)
    static let rsa4096 = try! PrivateKey.generate(.rsa4096)

    static func key(_ type: CAKeyType) -> PrivateKey {
        switch type {
        case .ed25519: return ed25519
        case .ecdsaP256: return ecdsaP256
        case .ecdsaP384: return ecdsaP384
        case .ecdsaP521: return ecdsaP521
        case .rsa3072: return rsa3072
        case .rsa4096: return rsa4096
        }
    }

    /// A plain (subject) key for certificates.
    static let subject = try! PrivateKey.generate(.ed25519).publicKey
}

/// An unsigned certificate body certified by `ca`, for signing tests.
func sampleBody(ca: PublicKey, keyID: String = "sample") -> CertificateBody {
    CertificateBody(
        nonce: Data(SecureRandom.bytes(32)), publicKey: SharedKeys.subject, serial: 42, type: .user,
        keyID: keyID, principals: ["alice"], validAfter: 0, validBefore: .max,
        criticalOptions: [.value("force-command", "true")], extensions: [.flag("permit-pty")],
        signatureKey: ca)
}

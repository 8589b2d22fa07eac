internal import CCryptoShim
internal import CLibCrypto
public import SSHFormat
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The CA key types sshca creates.
public enum CAKeyType: String, CaseIterable, Sendable {
    case ed25519
    case ecdsaP256 = "ecdsa-p256"
    case ecdsaP384 = "ecdsa-p384"
    case ecdsaP521 = "ecdsa-p521"
    case rsa3072 = "rsa-3072"
    case rsa4096 = "rsa-4096"
}

/// Costs of the scrypt KDF that protects CA private keys at rest. N = 2^15 with r = 8 needs 32 MiB,
/// just inside what OpenSSL allows by default when it decrypts (so `openssl pkey` reads the file too).
public struct ScryptCost: Sendable {
    public var n: UInt64, r: UInt64, p: UInt64
    public init(n: UInt64, r: UInt64, p: UInt64) { self.n = n; self.r = r; self.p = p }
    public static let standard = ScryptCost(n: 1 << 14, r: 8, p: 4)
}

/// An unchecked wrapper so pooled libcrypto contexts can pass through a Mutex.
private struct ContextHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// A private key held by libcrypto. Signing is thread-safe: each signature uses a context taken
/// from a small pool, initialised once, as `openssl speed` does.
public final class PrivateKey: Sendable {
    let key: EVPKey
    public let publicKey: PublicKey
    private let pool = Mutex<[ContextHandle]>([])

    init(key: EVPKey) throws(CryptoError) {
        self.key = key
        self.publicKey = try Self.derivePublicKey(key)
    }

    deinit {
        pool.withLock { contexts in
            for context in contexts {
                if case .ed25519 = publicKey {
                    EVP_MD_CTX_free(context.pointer)
                } else {
                    EVP_PKEY_CTX_free(context.pointer)
                }
            }
            contexts.removeAll()
        }
    }

    public static func generate(_ type: CAKeyType) throws(CryptoError) -> PrivateKey {
        let made: OpaquePointer? = switch type {
        case .ed25519: sshca_generate_ed25519()
        case .ecdsaP256: sshca_generate_ec(ECCurve.nistp256.opensslName)
        case .ecdsaP384: sshca_generate_ec(ECCurve.nistp384.opensslName)
        case .ecdsaP521: sshca_generate_ec(ECCurve.nistp521.opensslName)
        case .rsa3072: sshca_generate_rsa(3072)
        case .rsa4096: sshca_generate_rsa(4096)
        }
        guard let made else { throw CryptoError.libcrypto("generating a \(type.rawValue) key") }
        return try PrivateKey(key: EVPKey(taking: made))
    }

    /// Reads a PEM private key (PKCS#8, encrypted or not; or a traditional RSA/EC PEM).
    public convenience init(pem: String, passphrase: [UInt8]?) throws(CryptoError) {
        if let seed = Self.unencryptedEd25519Seed(pem: pem) {
            let made = seed.withUnsafeBufferPointer { EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count) }
            guard let made else { throw CryptoError.libcrypto("loading the Ed25519 private key") }
            try self.init(key: EVPKey(taking: made))
            return
        }
        var status: Int32 = 0
        let bytes = Array(pem.utf8)
        let made: OpaquePointer? = bytes.withUnsafeBufferPointer { pemBuf in
            pemBuf.withMemoryRebound(to: CChar.self) { pemChars in
                if let passphrase {
                    return (passphrase + [0]).withUnsafeBufferPointer { passBuf in
                        passBuf.withMemoryRebound(to: CChar.self) { passChars in
                            sshca_private_key_from_pem(pemChars.baseAddress, pemChars.count,
                                                       passChars.baseAddress, passChars.count - 1, &status)
                        }
                    }
                }
                return sshca_private_key_from_pem(pemChars.baseAddress, pemChars.count, nil, 0, &status)
            }
        }
        var scratch = [CChar](repeating: 0, count: 8)
        sshca_take_error(&scratch, 0)
        guard let made else {
            if status == 1 {
                throw CryptoError(.passphraseRequired, "the CA private key is encrypted; give its passphrase with --passphrase-file FILE or $SSHCA_PASSPHRASE_FILE")
            }
            if Self.isEncrypted(pem: pem) {
                throw CryptoError(.wrongPassphrase, "wrong passphrase for the CA private key (it could not be decrypted)")
            }
            throw CryptoError(.unsupportedKey, "the CA private key file is not a readable PEM private key")
        }
        try self.init(key: EVPKey(taking: made))
    }

    /// RFC 8410: an unencrypted Ed25519 PKCS#8 key is this fixed 16-byte header and the 32-byte
    /// seed. Recognising it directly skips libcrypto's generic decoder chain, which costs about
    /// half a millisecond per process, and every `sshca sign` loads a key.
    private static let ed25519PKCS8Header: [UInt8] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    static func unencryptedEd25519Seed(pem: String) -> [UInt8]? {
        let lines = pem.split(whereSeparator: \.isNewline)
        guard let begin = lines.firstIndex(of: "-----BEGIN PRIVATE KEY-----"),
              let end = lines.firstIndex(of: "-----END PRIVATE KEY-----"), begin < end,
              let der = Data(base64Encoded: lines[(begin + 1)..<end].joined()),
              der.count == ed25519PKCS8Header.count + 32, der.starts(with: ed25519PKCS8Header) else {
            return nil
        }
        return Array(der.suffix(32))
    }

    public static func isEncrypted(pem: String) -> Bool {
        let bytes = Array(pem.utf8)
        return bytes.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { sshca_pem_is_encrypted($0.baseAddress, $0.count) == 1 }
        }
    }

    /// PKCS#8 PEM; with a passphrase: PBES2 with scrypt and AES-256-CBC.
    public func pem(passphrase: [UInt8]?, cost: ScryptCost = .standard) throws(CryptoError) -> String {
        var length = 0
        let text: UnsafeMutablePointer<CChar>? = if let passphrase {
            (passphrase + [0]).withUnsafeBufferPointer { passBuf in
                passBuf.withMemoryRebound(to: CChar.self) { passChars in
                    sshca_private_key_to_pem(key.pointer, passChars.baseAddress, passChars.count - 1,
                                             cost.n, cost.r, cost.p, &length)
                }
            }
        } else {
            sshca_private_key_to_pem(key.pointer, nil, 0, 0, 0, 0, &length)
        }
        guard let text else { throw CryptoError.libcrypto("writing the private key as PEM") }
        defer { CRYPTO_free(text, #fileID, #line) }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }

    /// The private fields, for writing OpenSSH's own private key format.
    public func components() throws(CryptoError) -> PrivateKeyComponents {
        switch publicKey {
        case .ed25519(let pk):
            var seed = [UInt8](repeating: 0, count: 32)
            var length = 32
            guard EVP_PKEY_get_raw_private_key(key.pointer, &seed, &length) == 1, length == 32 else {
                throw CryptoError.libcrypto("reading the Ed25519 private key")
            }
            return .ed25519(seed: Data(seed), publicKey: pk)
        case .ecdsa(let curve, let point):
            return .ecdsa(curve: curve, point: point, scalar: key.bigNumber("priv"))
        case .rsa(let e, let n):
            return .rsa(n: n, e: e, d: key.bigNumber("d"), iqmp: key.bigNumber("rsa-coefficient1"),
                        p: key.bigNumber("rsa-factor1"), q: key.bigNumber("rsa-factor2"))
        default:
            throw CryptoError(.unsupportedKey, "security keys cannot be exported")
        }
    }

    /// The signature algorithm this key signs with: never ssh-rsa (SHA-1), which OpenSSH refuses.
    public var signatureAlgorithm: String {
        switch publicKey {
        case .rsa: return "rsa-sha2-512"
        default: return publicKey.typeName
        }
    }

    public func sign(_ data: [UInt8]) throws(CryptoError) -> SSHSignature {
        let context = try takeContext()
        defer { pool.withLock { $0.append(context) } }
        switch publicKey {
        case .ed25519:
            var signature = [UInt8](repeating: 0, count: 64)
            var length = 64
            guard EVP_DigestSign(context.pointer, &signature, &length, data, data.count) == 1, length == 64 else {
                throw CryptoError.libcrypto("Ed25519 signing")
            }
            return SSHSignature(algorithm: signatureAlgorithm, bytes: Data(signature))
        case .ecdsa(let curve, _):
            let digest = curve.digest.hash(data)
            var der = [UInt8](repeating: 0, count: 160)
            var length = der.count
            guard EVP_PKEY_sign(context.pointer, &der, &length, digest, digest.count) == 1 else {
                throw CryptoError.libcrypto("ECDSA signing")
            }
            var r = [UInt8](repeating: 0, count: 80), s = [UInt8](repeating: 0, count: 80)
            var rLength = r.count, sLength = s.count
            guard sshca_ecdsa_der_to_rs(der, length, &r, &rLength, &s, &sLength) == 1 else {
                throw CryptoError.libcrypto("decoding the ECDSA signature")
            }
            var w = SSHWriter(reservingCapacity: 150)
            w.writeMPInt(unsigned: r.prefix(rLength))
            w.writeMPInt(unsigned: s.prefix(sLength))
            return SSHSignature(algorithm: signatureAlgorithm, bytes: w.data)
        case .rsa:
            let digest = Digest.sha512.hash(data)
            var signature = [UInt8](repeating: 0, count: Int(EVP_PKEY_get_size(key.pointer)))
            var length = signature.count
            guard EVP_PKEY_sign(context.pointer, &signature, &length, digest, digest.count) == 1 else {
                throw CryptoError.libcrypto("RSA signing")
            }
            return SSHSignature(algorithm: signatureAlgorithm, bytes: Data(signature.prefix(length)))
        default:
            throw CryptoError(.unsupportedKey, "cannot sign with a \(publicKey.typeName) key")
        }
    }

    private func takeContext() throws(CryptoError) -> ContextHandle {
        if let pooled = pool.withLock({ $0.popLast() }) { return pooled }
        switch publicKey {
        case .ed25519:
            guard let ctx = EVP_MD_CTX_new() else { throw CryptoError.libcrypto("allocating a signing context") }
            guard EVP_DigestSignInit(ctx, nil, nil, nil, key.pointer) == 1 else {
                EVP_MD_CTX_free(ctx)
                throw CryptoError.libcrypto("initialising Ed25519 signing")
            }
            return ContextHandle(pointer: ctx)
        case .ecdsa(let curve, _):
            return try pkeyContext(md: Self.evpMD(curve.digest), rsaPadding: false)
        case .rsa:
            return try pkeyContext(md: EVP_sha512(), rsaPadding: true)
        default:
            throw CryptoError(.unsupportedKey, "cannot sign with a \(publicKey.typeName) key")
        }
    }

    private func pkeyContext(md: OpaquePointer?, rsaPadding: Bool) throws(CryptoError) -> ContextHandle {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
            throw CryptoError.libcrypto("allocating a signing context")
        }
        guard EVP_PKEY_sign_init(ctx) == 1,
              !rsaPadding || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1,
              EVP_PKEY_CTX_set_signature_md(ctx, md) == 1 else {
            EVP_PKEY_CTX_free(ctx)
            throw CryptoError.libcrypto("initialising signing")
        }
        return ContextHandle(pointer: ctx)
    }

    static func evpMD(_ digest: Digest) -> OpaquePointer? {
        switch digest {
        case .sha1: return EVP_sha1()
        case .sha256: return EVP_sha256()
        case .sha384: return EVP_sha384()
        case .sha512: return EVP_sha512()
        }
    }

    private static func derivePublicKey(_ key: EVPKey) throws(CryptoError) -> PublicKey {
        let id = EVP_PKEY_get_base_id(key.pointer)
        if id == EVP_PKEY_ED25519 {
            var pk = [UInt8](repeating: 0, count: 32)
            var length = 32
            guard EVP_PKEY_get_raw_public_key(key.pointer, &pk, &length) == 1, length == 32 else {
                throw CryptoError.libcrypto("reading the Ed25519 public key")
            }
            return .ed25519(Data(pk))
        }
        if id == EVP_PKEY_EC {
            let group = key.utf8("group")
            guard let curve = ECCurve.allCases.first(where: {
                $0.opensslName == group || group == ["nistp256": "prime256v1", "nistp384": "secp384r1", "nistp521": "secp521r1"][$0.rawValue]
            }) else {
                throw CryptoError(.unsupportedKey, "EC keys on curve \(group) are not supported; use P-256, P-384 or P-521")
            }
            let point = key.octets("encoded-pub-key")
            guard point.count == 1 + 2 * curve.coordinateByteCount, point.first == 4 else {
                throw CryptoError(.unsupportedKey, "the EC public key is not an uncompressed point")
            }
            return .ecdsa(curve: curve, point: point)
        }
        if id == EVP_PKEY_RSA {
            let key = PublicKey.rsa(e: key.bigNumber("e"), n: key.bigNumber("n"))
            guard key.bits >= 2048 else {
                throw CryptoError(.weakKey, "RSA CA keys under 2048 bits are refused (this one has \(key.bits))")
            }
            return key
        }
        throw CryptoError(.unsupportedKey, "unsupported private key type (sshca uses Ed25519, ECDSA or RSA CA keys)")
    }
}

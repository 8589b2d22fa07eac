internal import CCryptoShim
internal import CLibCrypto
public import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The outcome of checking a signature.
public enum SignatureVerdict: Equatable, Sendable {
    case valid
    case invalid(String)
    case unsupported(String)

    public var isValid: Bool { self == .valid }
}

extension PublicKey {
    /// Checks that the key is one a CA should certify: a real point on its curve, a sane RSA
    /// modulus and exponent of at least `minimumRSABits`.
    public func checkStrength(minimumRSABits: Int = 2048) throws(CryptoError) {
        if case .rsa(let e, _) = self {
            guard bits >= minimumRSABits else {
                throw CryptoError(.weakKey, "RSA keys under \(minimumRSABits) bits are refused (this one has \(bits)); make a new key with ssh-keygen -t ed25519 (or -t rsa -b 3072)")
            }
            guard bits <= 16384 else {
                throw CryptoError(.weakKey, "RSA keys over 16384 bits are refused (this one has \(bits)); OpenSSH does not accept them")
            }
            guard let last = e.last, last & 1 == 1, e.count > 1 || last > 1 else {
                throw CryptoError(.weakKey, "the RSA public exponent is invalid (it must be odd and greater than 1)")
            }
        }
        switch self {
        case .ed25519, .skEd25519:
            // 32 opaque bytes: libcrypto has nothing to check before a signature is verified.
            return
        default:
            break
        }
        let key = try EVPKey.publicKey(self)
        if case .rsa = self, sshca_public_check(key.pointer) != 1 {
            var scratch = [CChar](repeating: 0, count: 8)
            sshca_take_error(&scratch, 0)
            throw CryptoError(.weakKey, "the RSA public key fails libcrypto's checks")
        }
    }

    /// Verifies an SSH signature made by this key over `data`.
    public func verify(_ signature: SSHSignature, over data: some Collection<UInt8>) -> SignatureVerdict {
        let message = Array(data)
        let key: EVPKey
        do { key = try EVPKey.publicKey(self) } catch { return .invalid(error.reason) }
        switch self {
        case .ed25519:
            guard signature.algorithm == PublicKey.ed25519Name else {
                return .invalid("an Ed25519 key cannot make a \(signature.algorithm) signature")
            }
            guard signature.bytes.count == 64 else { return .invalid("Ed25519 signature must be 64 bytes") }
            guard let ctx = EVP_MD_CTX_new() else { return .invalid("out of memory") }
            defer { EVP_MD_CTX_free(ctx) }
            let sig = Array(signature.bytes)
            let ok = EVP_DigestVerifyInit(ctx, nil, nil, nil, key.pointer) == 1
                && EVP_DigestVerify(ctx, sig, sig.count, message, message.count) == 1
            clearErrors()
            return ok ? .valid : .invalid("the signature does not match")
        case .ecdsa(let curve, _):
            guard signature.algorithm == typeName else {
                return .invalid("an \(typeName) key cannot make a \(signature.algorithm) signature")
            }
            var r = SSHReader(signature.bytes)
            guard let rBytes = try? r.readUnsignedMPInt(), let sBytes = try? r.readUnsignedMPInt(), r.isAtEnd else {
                return .invalid("malformed ECDSA signature")
            }
            var der = [UInt8](repeating: 0, count: 200)
            var derLength = der.count
            guard sshca_ecdsa_rs_to_der(rBytes, rBytes.count, sBytes, sBytes.count, &der, &derLength) == 1 else {
                clearErrors()
                return .invalid("malformed ECDSA signature")
            }
            return verifyDigest(key: key, md: PrivateKey.evpMD(curve.digest), digest: curve.digest.hash(message),
                                signature: Array(der.prefix(derLength)), rsa: false)
        case .rsa:
            let digest: Digest
            switch signature.algorithm {
            case "rsa-sha2-512": digest = .sha512
            case "rsa-sha2-256": digest = .sha256
            case "ssh-rsa":
                return .unsupported("ssh-rsa (SHA-1) signature: OpenSSH 8.8 and later refuse these")
            default:
                return .invalid("an RSA key cannot make a \(signature.algorithm) signature")
            }
            return verifyDigest(key: key, md: PrivateKey.evpMD(digest), digest: digest.hash(message),
                                signature: Array(signature.bytes), rsa: true)
        case .skEd25519(let pk, let application):
            guard signature.algorithm == PublicKey.skEd25519Name, let sk = signature.securityKey else {
                return .invalid("an \(typeName) key cannot make a \(signature.algorithm) signature")
            }
            let signed = Self.securityKeySignedData(application: application, fields: sk, message: message)
            return PublicKey.ed25519(pk).verify(SSHSignature(algorithm: PublicKey.ed25519Name, bytes: signature.bytes), over: signed)
        case .skECDSA(let point, let application):
            guard signature.algorithm == PublicKey.skECDSAName, let sk = signature.securityKey else {
                return .invalid("an \(typeName) key cannot make a \(signature.algorithm) signature")
            }
            let signed = Self.securityKeySignedData(application: application, fields: sk, message: message)
            return PublicKey.ecdsa(curve: .nistp256, point: point)
                .verify(SSHSignature(algorithm: ECCurve.nistp256.keyTypeName, bytes: signature.bytes), over: signed)
        }
    }

    /// What a FIDO authenticator signs for an sk- key (PROTOCOL.u2f): SHA-256 of the application,
    /// the flags, the counter and SHA-256 of the message.
    static func securityKeySignedData(application: String, fields: SSHSignature.SecurityKeyFields, message: [UInt8]) -> [UInt8] {
        var data = Digest.sha256.hash(Array(application.utf8))
        data.append(fields.flags)
        data += withUnsafeBytes(of: fields.counter.bigEndian) { Array($0) }
        data += Digest.sha256.hash(message)
        return data
    }

    private func verifyDigest(key: EVPKey, md: OpaquePointer?, digest: [UInt8], signature: [UInt8], rsa: Bool) -> SignatureVerdict {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else { return .invalid("out of memory") }
        defer { EVP_PKEY_CTX_free(ctx) }
        let ok = EVP_PKEY_verify_init(ctx) == 1
            && (!rsa || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1)
            && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
            && EVP_PKEY_verify(ctx, signature, signature.count, digest, digest.count) == 1
        clearErrors()
        return ok ? .valid : .invalid("the signature does not match")
    }

    private func clearErrors() {
        var scratch = [CChar](repeating: 0, count: 8)
        sshca_take_error(&scratch, 0)
    }
}

extension Certificate {
    /// Checks the CA signature over the certificate's signed bytes with its own signature key.
    public func verifySignature() -> SignatureVerdict {
        body.signatureKey.verify(signature, over: signedBytes)
    }
}

extension SSHSig {
    /// Verifies the signature over `message` as `ssh-keygen -Y verify` does: the namespace must be
    /// the expected one, the signature must verify with the key it names, and a security key must
    /// have seen the user's touch unless `requireUserPresence` is false.
    public func verify(message: some Collection<UInt8>, namespace expected: String, requireUserPresence: Bool = true) -> SignatureVerdict {
        guard namespace == expected else {
            return .invalid("the signature is for namespace \"\(namespace)\", not \"\(expected)\"")
        }
        if case .rsa = publicKey, signature.algorithm == "ssh-rsa" {
            return .invalid("ssh-rsa (SHA-1) signatures are refused")
        }
        if publicKey.isSecurityKey, requireUserPresence, signature.securityKey?.userPresent != true {
            return .invalid("the security key signed without the user's touch")
        }
        let signed = SSHSig.signedData(message: Array(message), namespace: namespace, hashAlgorithm: hashAlgorithm)
        return publicKey.verify(signature, over: signed)
    }
}

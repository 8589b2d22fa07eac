internal import CCryptoShim
internal import CLibCrypto
import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Owns one EVP_PKEY; the only place its lifetime is managed.
final class EVPKey: @unchecked Sendable {
    // EVP_PKEY is reference counted and safe to use from several threads for signing and
    // verifying once built; it is never mutated after init.
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        EVP_PKEY_free(pointer)
    }

    func bigNumber(_ name: String, maxBytes: Int = 1024) -> Data {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let n = sshca_get_bn_param(pointer, name, &buffer, buffer.count)
        return n > 0 ? Data(buffer.prefix(n)) : Data()
    }

    func octets(_ name: String, maxBytes: Int = 1024) -> Data {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let n = sshca_get_octet_param(pointer, name, &buffer, buffer.count)
        return n > 0 ? Data(buffer.prefix(n)) : Data()
    }

    func utf8(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 128)
        let n = sshca_get_utf8_param(pointer, name, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }

    /// Builds the libcrypto key for an SSH public key (for verification and strength checks).
    static func publicKey(_ key: PublicKey) throws(CryptoError) -> EVPKey {
        let made: OpaquePointer?
        switch key {
        case .ed25519(let pk), .skEd25519(let pk, _):
            made = pk.withUnsafeBytes { buf in
                EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, buf.bindMemory(to: UInt8.self).baseAddress, buf.count)
            }
        case .ecdsa(let curve, let point):
            made = point.withUnsafeBytes { buf in
                sshca_ec_public_key(curve.opensslName, buf.bindMemory(to: UInt8.self).baseAddress, buf.count)
            }
        case .skECDSA(let point, _):
            made = point.withUnsafeBytes { buf in
                sshca_ec_public_key(ECCurve.nistp256.opensslName, buf.bindMemory(to: UInt8.self).baseAddress, buf.count)
            }
        case .rsa(let e, let n):
            made = n.withUnsafeBytes { nb in
                e.withUnsafeBytes { eb in
                    sshca_rsa_public_key(nb.bindMemory(to: UInt8.self).baseAddress, nb.count,
                                         eb.bindMemory(to: UInt8.self).baseAddress, eb.count)
                }
            }
        }
        guard let made else {
            var buffer = [CChar](repeating: 0, count: 8)
            sshca_take_error(&buffer, 0)
            throw CryptoError(.weakKey, "the \(key.shortName) public key is invalid (not a valid point or modulus)")
        }
        return EVPKey(taking: made)
    }
}

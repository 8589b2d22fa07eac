internal import CCryptoShim
internal import CLibCrypto
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A TLS key and self-signed certificate for the service (`sshca tls`): clients pin the
/// certificate itself as their `--ca-bundle`, so no company PKI is needed to start.
public enum TLSCertificate {
    /// `names`: host names and IP addresses clients use (the first is the subject's CN).
    /// Returns the PEM private key (PKCS#8, unencrypted: the service reads it at start) and
    /// the PEM certificate.
    public static func selfSigned(names: [String], days: Int) throws(CryptoError) -> (key: String, certificate: String) {
        guard let first = names.first else { throw CryptoError(.unsupportedKey, "a TLS certificate needs at least one name") }
        let key = try PrivateKey.generate(.ecdsaP256)
        let san = names.map { isIPAddress($0) ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        var serial = [UInt8](repeating: 0, count: 16)
        guard sshca_random_bytes(&serial, serial.count) == serial.count else { throw CryptoError.libcrypto("random serial") }
        serial[0] &= 0x7f
        var length = 0
        // X.509 limits a CN to 64 characters; the names that count are in the SAN.
        let commonName = first.count <= 64 ? first : "sshca"
        let text = sshca_self_signed_certificate(key.key.pointer, commonName, san, serial, serial.count, days, &length)
        guard let text else { throw CryptoError.libcrypto("making the TLS certificate") }
        defer { CRYPTO_free(text, #fileID, #line) }
        let certificate = String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
        return (try key.pem(passphrase: nil), certificate)
    }

    public static func isIPAddress(_ name: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }
}

internal import CLibCrypto

/// The hashes the wire formats need (fingerprints, KRL hash sections), computed by libcrypto.
public enum Digest: Sendable {
    case sha1, sha256, sha384, sha512

    public var byteCount: Int {
        switch self {
        case .sha1: return 20
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }

    public func hash<C: Collection>(_ input: C) -> [UInt8] where C.Element == UInt8 {
        var out = [UInt8](repeating: 0, count: byteCount)
        let md = FetchedDigests.shared.md(self)
        let ok = input.withContiguousStorageIfAvailable { buf in
            EVP_Digest(buf.baseAddress, buf.count, &out, nil, md, nil)
        } ?? Array(input).withUnsafeBufferPointer { buf in
            EVP_Digest(buf.baseAddress, buf.count, &out, nil, md, nil)
        }
        precondition(ok == 1, "libcrypto digest failed")
        return out
    }
}

/// Digest implementations fetched from the provider once. OpenSSL 3 otherwise looks the
/// implementation up again on every EVP_Digest call through the legacy EVP_sha256() handles,
/// which costs more than hashing a certificate.
struct FetchedDigests: @unchecked Sendable {
    // Fetched EVP_MD objects are immutable and safe to share between threads.
    let sha1, sha256, sha384, sha512: OpaquePointer?

    static let shared = FetchedDigests(
        sha1: EVP_MD_fetch(nil, "SHA1", nil), sha256: EVP_MD_fetch(nil, "SHA256", nil),
        sha384: EVP_MD_fetch(nil, "SHA384", nil), sha512: EVP_MD_fetch(nil, "SHA512", nil))

    func md(_ digest: Digest) -> OpaquePointer? {
        switch digest {
        case .sha1: return sha1
        case .sha256: return sha256
        case .sha384: return sha384
        case .sha512: return sha512
        }
    }
}

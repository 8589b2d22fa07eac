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
        let md: OpaquePointer? = switch self {
        case .sha1: EVP_sha1()
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
        let ok = input.withContiguousStorageIfAvailable { buf in
            EVP_Digest(buf.baseAddress, buf.count, &out, nil, md, nil)
        } ?? Array(input).withUnsafeBufferPointer { buf in
            EVP_Digest(buf.baseAddress, buf.count, &out, nil, md, nil)
        }
        precondition(ok == 1, "libcrypto digest failed")
        return out
    }
}

internal import CCryptoShim
internal import CLibCrypto
#if canImport(Glibc)
import Glibc
#endif

/// A failure in key handling or signing: a stable code for tests and scripts, a reason for people.
public struct CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let libcrypto = Code(rawValue: "libcrypto")
        public static let passphraseRequired = Code(rawValue: "passphrase-required")
        public static let wrongPassphrase = Code(rawValue: "wrong-passphrase")
        public static let unsupportedKey = Code(rawValue: "unsupported-key")
        public static let weakKey = Code(rawValue: "weak-key")
        public static let agent = Code(rawValue: "agent")
        public static let keyNotInAgent = Code(rawValue: "key-not-in-agent")
    }

    public var code: Code
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }

    /// Turns the OpenSSL error queue into an error naming what was being done.
    static func libcrypto(_ doing: String) -> CryptoError {
        var buffer = [CChar](repeating: 0, count: 256)
        sshca_take_error(&buffer, buffer.count)
        let detail = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return CryptoError(.libcrypto, detail.isEmpty ? "libcrypto: \(doing) failed" : "libcrypto: \(doing) failed: \(detail)")
    }
}

/// Cryptographically secure random bytes (nonces, serials) from the kernel's CSPRNG, as
/// OpenSSH's arc4random does; libcrypto's DRBG is not needed for these and costs a seeding
/// round at start-up.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = out[filled...].withUnsafeMutableBytes { sshca_random_bytes($0.baseAddress, $0.count) }
            if n < 0 {
                precondition(errno == EINTR, "the kernel random generator (getrandom) failed")
                continue
            }
            filled += n
        }
        return out
    }

    public static func uint64() -> UInt64 {
        bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// libcrypto as a whole process uses it.
public enum CryptoLibrary {
    /// For a process that exits when its work is done (a CLI command): libcrypto then leaves
    /// its tables to the exit instead of freeing them one by one in an exit handler (about a
    /// million instructions, for memory the kernel takes back anyway). Call it before anything
    /// else uses libcrypto; the system's OpenSSL configuration is still read as usual.
    public static func skipCleanupAtExit() {
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil)
    }
}

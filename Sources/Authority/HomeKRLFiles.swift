import Common
import SSHFormat
public import Ledger
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A CA home's published KRL, the single-node way of keeping `PublishedKRLs`: revoked.krl and
/// revoked.krl.sig in the home, which sshd on the CA's own machine can read too. Publishers on
/// this home (the service, `sshca revoke`, `sshca krl write`) take turns through an exclusive
/// lock on revoked.krl.lock; each KRL is written so that a reader never sees a partial or
/// invalid file (temp file, fsync, rename). Read again only when either file was replaced.
public final class HomeKRLFiles: PublishedKRLs {
    let path: String
    let lockPath: String
    private let cache = Mutex<Cached?>(nil)
    private let turns = Turns()

    private struct Cached {
        var identity: FileIdentity
        var signatureIdentity: FileIdentity?
        var krl: StoredKRL
    }

    /// `path`: the KRL (its signature beside it, at PATH.sig); `lockPath`: the lock publishers take turns with.
    public init(path: String, lockPath: String) {
        self.path = path
        self.lockPath = lockPath
    }

    /// This process's publishers wait for their turn suspended (a publish may wait on a ledger
    /// that answers later, and publishers blocked on the file lock would hold every thread of
    /// the task pool); the one whose turn it is takes the file lock other processes share.
    public func inPublishOrder<T: Sendable>(_ publish: @Sendable () async throws -> T) async throws -> T {
        try await turns.inTurn { [lockPath] in
            let lock = try FileLock(path: lockPath)
            defer { lock.release() }
            return try await publish()
        }
    }

    public func keep(_ krl: StoredKRL) async throws {
        try Self.write(krl, to: path)
    }

    /// Writes `krl` and its signature (or removes a stale one) at `file`: the signature first,
    /// so a reader that sees the new KRL finds its signature there (a reader between the two
    /// renames gets a pair that does not verify, and tries again).
    static func write(_ krl: StoredKRL, to file: String) throws(SSHCAError) {
        if let signature = krl.signature {
            try Files.writeAtomically(DetachedKRLSignature.path(for: file), Array(signature.utf8), mode: 0o644)
        } else {
            Files.remove(DetachedKRLSignature.path(for: file))
        }
        try Files.writeAtomically(file, krl.bytes, mode: 0o644)
    }

    /// The pair as it is on disk (a fleet polls every few minutes and a KRL can be megabytes:
    /// read and hashed again only when a file was replaced; a KRL is always a new file renamed
    /// over the old one, a new inode). nil when no KRL was written.
    public func current() async throws -> StoredKRL? {
        let signaturePath = DetachedKRLSignature.path(for: path)
        let before = (krl: FileIdentity(path), signature: FileIdentity(signaturePath))
        guard let identity = before.krl else { return nil }
        if let cached = cache.withLock({ $0 }), cached.identity == identity, cached.signatureIdentity == before.signature {
            return cached.krl
        }
        let bytes = try Files.read(path, maximumBytes: 1 << 30, what: "KRL")
        let signature = try? Files.readText(signaturePath, maximumBytes: 64 * 1024, what: "KRL signature")
        let krl = StoredKRL(version: KRL.headerVersion(bytes) ?? 0, bytes: bytes, signature: signature)
        // Cached only when neither file was replaced while they were read.
        if FileIdentity(path) == identity, FileIdentity(signaturePath) == before.signature {
            cache.withLock { $0 = Cached(identity: identity, signatureIdentity: before.signature, krl: krl) }
        }
        return krl
    }

    struct FileIdentity: Equatable {
        var device: UInt64, inode: UInt64, size: Int64, modifiedSeconds: Int, modifiedNanoseconds: Int

        init?(_ path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modifiedSeconds = info.st_mtim.tv_sec
            modifiedNanoseconds = info.st_mtim.tv_nsec
        }
    }
}

import Common
public import SSHFormat
import SSHCrypto
import Ledger
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A KRL as written: its version, what it holds, and its bytes.
public struct PublishedKRL: Sendable {
    public var version: UInt64
    public var bytes: [UInt8]
    public var krl: KRL
    public var signedBy: PublicKey?
    /// The detached signature over `bytes` (`ssh-keygen -Y sign` armor, namespace
    /// DetachedKRLSignature.namespace), written beside the KRL as FILE.sig and served at /v1/krl.sig.
    public var signature: String?
    public var chainHead: String
    /// Something the operator must know (printed by the CLI).
    public var warnings: [String] = []
}

/// Builds KRLs from the ledger and keeps them where the ledger keeps the KRL it serves
/// (`PublishedKRLs`: a home's files, or a shared database), one publisher at a time, so that
/// versions are kept in the order they were taken.
struct KRLPublisher {
    let authority: CertificateAuthority

    /// A new version, kept as the one served and written to each of `copies` as well. The copies
    /// are written in the same turn: a copy written after it could land after a newer KRL and
    /// put an older one back (when a copy is the home's own KRL).
    func publish(copies: [String] = [], by: String, passphrase: PassphraseSource, now: UInt64) async throws(SSHCAError) -> PublishedKRL {
        try await inPublishOrder { () throws(SSHCAError) in
            try await buildAndKeep(copies: copies, by: by, passphrase: passphrase, now: now)
        }
    }

    /// Publishes only when the KRL would revoke something other than the one served does (a
    /// revocation of what is already revoked changes nothing, and so takes no new version). The
    /// comparison and the publish happen in one turn.
    func publishIfChanged(by: String, passphrase: PassphraseSource, now: UInt64) async throws(SSHCAError) -> (krl: PublishedKRL, changed: Bool) {
        try await inPublishOrder { () throws(SSHCAError) in
            if let current = try? await current(now: now) { return (current, false) }
            return (try await buildAndKeep(copies: [], by: by, passphrase: passphrase, now: now), true)
        }
    }

    private func inPublishOrder<T: Sendable>(_ body: @escaping @Sendable () async throws(SSHCAError) -> T) async throws(SSHCAError) -> T {
        do {
            return try await authority.ledger.publishedKRLs.inPublishOrder { try await body() }
        } catch let error as SSHCAError {
            throw error
        } catch {
            throw SSHCAError.from(error)
        }
    }

    /// In the publishers' turn: a new version, kept and written to each copy.
    private func buildAndKeep(copies: [String], by: String, passphrase: PassphraseSource, now: UInt64) async throws(SSHCAError) -> PublishedKRL {
        let published = try await build(by: by, passphrase: passphrase, now: now)
        let stored = StoredKRL(version: published.version, bytes: published.bytes, signature: published.signature)
        do {
            try await authority.ledger.publishedKRLs.keep(stored)
        } catch let error as SSHCAError {
            throw error
        } catch {
            throw SSHCAError.from(error)
        }
        for copy in copies { try HomeKRLFiles.write(stored, to: copy) }
        return published
    }

    /// Each KRL's comment names the audit chain head it was published at: a witness that
    /// `sshca audit verify` checks the chain against.
    private static let commentPrefix = "sshca audit-head "

    static func comment(auditHead: String) -> String { commentPrefix + auditHead }

    /// The audit head a KRL's comment names; nil for a KRL that names none (another tool's).
    static func auditHead(of krl: KRL) -> String? {
        krl.comment.hasPrefix(commentPrefix) ? String(krl.comment.dropFirst(commentPrefix.count)) : nil
    }

    /// The KRL served, when it revokes exactly what the ledger does now and is signed as the
    /// configuration asks; nil otherwise.
    private func current(now: UInt64) async throws -> PublishedKRL? {
        guard let kept = try await authority.ledger.publishedKRLs.current() else { return nil }
        let bytes = kept.bytes
        let krl = try KRL.parse(bytes).krl
        let state = try await authority.ledger.revocationState(omitExpiredBefore: now.subtractingClamped(authority.configuration.krlExpiredMargin))
        guard krl.certificates.count == state.certificates.count,
              zip(krl.certificates, state.certificates).allSatisfy({ $0.caKey == $1.caKey && $0.serials == $1.serials && Set($0.keyIDs) == Set($1.keyIDs) }),
              Set(krl.explicitKeys) == Set(state.keys.map(\.blob)), krl.sha1Fingerprints.isEmpty, krl.sha256Fingerprints.isEmpty else { return nil }
        let signature = kept.signature
        var signedBy: PublicKey? = nil
        let userCA = try authority.home.publicKey(.user)
        if authority.configuration.signKRL, !state.keys.contains(userCA) {
            guard let signature, DetachedKRLSignature.problem(signature, over: bytes, by: userCA) == nil else { return nil }
            signedBy = userCA
        }
        let head = Self.auditHead(of: krl) ?? ""
        return PublishedKRL(version: krl.version, bytes: bytes, krl: krl, signedBy: signedBy, signature: signedBy == nil ? nil : signature, chainHead: head)
    }

    func build(by: String, passphrase: PassphraseSource, now: UInt64) async throws(SSHCAError) -> PublishedKRL {
        let ledger = authority.ledger
        let state: RevocationState
        do {
            state = try await ledger.revocationState(omitExpiredBefore: now.subtractingClamped(authority.configuration.krlExpiredMargin))
        } catch {
            throw SSHCAError.from(error)
        }
        var signer: (any Signer)? = nil
        var warnings: [String] = []
        if authority.configuration.signKRL {
            let userCA = try authority.home.publicKey(.user)
            if state.keys.contains(userCA) {
                // A KRL signed by a key it revokes is invalid as a whole, and sshd then refuses
                // every key login: the revocation of a compromised CA goes out unsigned.
                warnings.append("the user CA key is revoked, so this KRL is published unsigned (no \(DetachedKRLSignature.path(for: "revoked.krl")): a signature by a revoked key proves nothing); servers that pin the KRL signer need the new CA's key")
            } else {
                signer = try authority.home.signer(.user, passphrase: passphrase, configuration: authority.configuration)
            }
        }
        let recorded: (version: UInt64, chainHead: String)
        do {
            let sections = state.certificates.count, keys = state.keys.count, signed = signer != nil
            recorded = try await ledger.recordKRLGeneration(by: by, now: now) { version in
                .krlGenerated(version: version, sections: sections, keys: keys, signed: signed)
            }
        } catch {
            throw SSHCAError.from(error)
        }
        let krl = KRL(version: recorded.version, generatedDate: now, comment: Self.comment(auditHead: recorded.chainHead),
                      certificates: state.certificates, explicitKeys: state.keys.map(\.blob))
        // Never a signature section inside the KRL: OpenSSH removed KRL signatures in 9.4 and
        // PROTOCOL.krl warns that it will refuse KRLs holding one. The signature is detached.
        let bytes = krl.encoded()
        var signature: String? = nil
        if let signer {
            do {
                signature = try DetachedKRLSignature.sign(bytes, with: signer)
            } catch {
                throw SSHCAError(.key, "signing the KRL failed: \(error.reason)")
            }
        }
        return PublishedKRL(version: recorded.version, bytes: bytes, krl: krl, signedBy: signer?.publicKey, signature: signature,
                            chainHead: recorded.chainHead, warnings: warnings)
    }
}

/// An advisory lock on a file (flock), held until released or the process ends.
final class FileLock: @unchecked Sendable {
    private let fd: Int32
    // Changed only by release(), which the owner calls once (deinit at the latest).
    private var held = true

    enum Mode { case exclusive, shared }

    /// `wait` false: throws `Busy` at once when another process holds a conflicting lock.
    init(path: String, mode: Mode = .exclusive, wait: Bool = true) throws(SSHCAError) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SSHCAError(.io, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        let operation = (mode == .exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(fd, operation) != 0 {
            if errno == EINTR { continue }
            let busy = errno == EWOULDBLOCK
            let message = String(cString: strerror(errno))
            close(fd)
            throw busy ? FileLock.busy(path) : SSHCAError(.io, "cannot lock \(path): \(message)")
        }
    }

    /// What a lock that would have to wait throws (the caller says who holds it).
    static func busy(_ path: String) -> SSHCAError { SSHCAError(.home, "\(path) is locked by another process") }

    func release() {
        guard held else { return }
        held = false
        flock(fd, LOCK_UN)
        close(fd)
    }

    deinit {
        release()
    }
}

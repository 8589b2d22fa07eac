import Common
public import SSHFormat
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Installs a KRL on a server for sshd's `RevokedKeys`, only when OpenSSH will accept it: sshd
/// refuses every key login when that file is missing or invalid, so a bad download must never
/// replace a good file.
public enum KRLSync {
    /// The largest KRL a server takes: a KRL of a million revoked serials in runs is a few
    /// megabytes; far more is an attack on the parser, not a list of revocations.
    public static let maximumBytes = 64 << 20

    /// An unpinned KRL may not jump further past the installed one than a restore does (2^32):
    /// a planted KRL with version 2^64-1 would make every later real KRL look like a rollback.
    public static let maximumUnsignedJump: UInt64 = 1 << 33

    /// The most separate runs of revoked serials a server installs. sshd turns every run into a
    /// tree node of its own (tens of bytes) each time it reads `RevokedKeys`, which it does at
    /// every login, while our parser keeps bitmaps as bits; so a KRL of a few megabytes of
    /// alternating bits is cheap to read here and costs sshd gigabytes.
    public static let maximumSerialRuns = KRL.maximumPlausibleSerialRuns

    public enum Outcome: Equatable, Sendable {
        case installed(version: UInt64, previous: UInt64?)
        case alreadyCurrent(version: UInt64)
    }

    /// - Parameters:
    ///   - pinnedSigner: when given, the KRL must be signed by this key: by its detached
    ///     signature (FILE.sig, /v1/krl.sig), or, from homes made before KRLs were signed that
    ///     way, by a signature section inside it (OpenSSH checks that those verify, not who made
    ///     them; the pin is ours to enforce).
    ///   - detachedSignature: the armored signature fetched or read beside the KRL; checked
    ///     before the KRL is parsed at all, so unauthenticated bytes are never decoded.
    ///   - sshKeygen: path of ssh-keygen, used as a last gate (`ssh-keygen -Q` must load the
    ///     file) when it exists.
    public static func install(_ bytes: [UInt8], source: String, to path: String, pinnedSigner: PublicKey?,
                               detachedSignature: String? = nil,
                               sshKeygen: String = "/usr/bin/ssh-keygen") throws(SSHCAError) -> Outcome {
        if let detachedSignature, let pinnedSigner {
            if let problem = DetachedKRLSignature.problem(detachedSignature, over: bytes, by: pinnedSigner) {
                throw SSHCAError(.badInput, "\(source): \(problem); refusing to install it")
            }
        }
        if let pinnedSigner, detachedSignature == nil {
            // A KRL signed inside (from homes made before detached signatures): the pinned key's
            // signature is checked in one pass over the section headers, before the sections
            // are decoded, so an unauthenticated KRL never gets to make the parser build sets.
            let inside = (try? KRL.signatures(in: bytes)) ?? []
            guard inside.contains(where: { $0.signingKey == pinnedSigner && pinnedSigner.verify($0.signature, over: $0.signedBytes).isValid }) else {
                let found = inside.isEmpty
                    ? "it is unsigned: no detached signature (\(DetachedKRLSignature.path(for: "FILE")) beside a file, /v1/krl.sig from a service) and no signature inside"
                    : "it is signed by \(inside.map(\.signingKey.fingerprint).joined(separator: ", "))"
                throw SSHCAError(.badInput, "\(source) is not signed by the pinned key \(pinnedSigner.fingerprint) (\(found)); refusing to install it")
            }
        }
        let candidate = try KRLInspection(bytes: bytes, source: source)
        let runs = candidate.krl.serialRunCount
        guard runs <= maximumSerialRuns else {
            throw SSHCAError(.badInput, "\(source) revokes serials in \(runs) separate runs, more than the \(maximumSerialRuns) a server takes: sshd would build one entry per run at every login, far more than any CA's real KRL needs (the CA's own KRLs join neighbouring serials into ranges and bitmaps). Refusing to install it")
        }
        // Check-and-rename under one lock: two runs at once (the timer and a manual one) must
        // not both compare against the same installed version and then rename in either order.
        let lock = try lockDirectory(of: path)
        defer { close(lock) }
        if let pinnedSigner {
            guard candidate.krl.revocation(of: pinnedSigner) == nil else {
                throw SSHCAError(.badInput, "\(source) revokes its own pinned signing key \(pinnedSigner.fingerprint); sshd would reject it. Refusing to install it")
            }
        }
        var previous: UInt64? = nil
        if Files.exists(path) {
            let installed = try Files.read(path, maximumBytes: 1 << 30, what: "installed KRL")
            if installed == bytes { return .alreadyCurrent(version: candidate.krl.version) }
            // A damaged installed file is replaced; a valid one is never replaced by an older KRL.
            if let current = try? KRL.parse(installed) {
                previous = current.krl.version
                guard candidate.krl.version >= current.krl.version else {
                    throw SSHCAError(.badInput, "\(source) has KRL version \(candidate.krl.version), older than the installed \(current.krl.version) at \(path); refusing to roll back")
                }
            }
        }
        if pinnedSigner == nil {
            let floor = previous ?? 0
            guard candidate.krl.version <= floor.addingClamped(maximumUnsignedJump) else {
                throw SSHCAError(.badInput, "\(source) has KRL version \(candidate.krl.version), \(previous.map { "far past the installed \($0)" } ?? "far past any real KRL's"); unpinned, it would make every later KRL look like a rollback, so it is refused. Give --ca-key (the user CA key) so that only a KRL the CA signed is taken")
            }
        }
        try Files.writeAtomically(path, bytes, mode: 0o644, durability: .synced) { (temp: String) throws(SSHCAError) in
            try gate(temp, sshKeygen: sshKeygen)
        }
        return .installed(version: candidate.krl.version, previous: previous)
    }

    /// An exclusive flock on the directory holding the installed KRL (no lock file to leave
    /// behind in /etc/ssh); released when the descriptor is closed.
    static func lockDirectory(of path: String) throws(SSHCAError) -> Int32 {
        let directory = Files.parentDirectory(of: path)
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SSHCAError(.io, "cannot open \(directory) to lock it: \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let message = String(cString: strerror(errno))
            close(fd)
            throw SSHCAError(.io, "cannot lock \(directory): \(message)")
        }
        return fd
    }

    /// `ssh-keygen -Q -f KRL KEY` exits 0 (not revoked) or 1 (revoked) when it loads the KRL, and
    /// 255 when it cannot.
    static func gate(_ krlPath: String, sshKeygen: String) throws(SSHCAError) {
        guard access(sshKeygen, X_OK) == 0 else { return }
        let probe = krlPath + ".probe.pub"
        // Any well-formed key will do: the question is only whether the KRL loads.
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g probe\n"
        try Files.writeAtomically(probe, Array(line.utf8), mode: 0o644, durability: .renameOnly)
        defer { Files.remove(probe) }
        let status = Subprocess.run(sshKeygen, ["-Q", "-f", krlPath, probe]).status
        guard status == 0 || status == 1 else {
            throw SSHCAError(.badInput, "ssh-keygen -Q cannot load the new KRL (exit \(status)); refusing to install it")
        }
    }
}

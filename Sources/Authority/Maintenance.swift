import Ledger
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CertificateAuthority {
    /// A consistent copy of the ledger, taken while the CA may be issuing (SQLite's backup API
    /// reads one snapshot), written to a temp file and renamed into place.
    public func backup(to path: String) throws(AuthorityError) {
        if Files.exists(path) {
            throw AuthorityError(.io, "\(path) already exists; choose a new file name for the backup")
        }
        try KeyFiles.checkWritable(path)
        let temporary = path + ".partial"
        Files.remove(temporary)
        do {
            try ledger.backup(to: temporary)
        } catch {
            Files.remove(temporary)
            throw AuthorityError.from(error)
        }
        guard rename(temporary, path) == 0 else {
            Files.remove(temporary)
            throw AuthorityError(.io, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Replaces the ledger with a backup. The lost ledger may have issued serials and published
    /// KRL versions past the backup's, so both counters jump (SQLiteLedger.restoreJump); then a
    /// new KRL is published. Stop anything else using this CA home first.
    public static func restore(home: CAHome, from backupPath: String, by: String, passphrase: PassphraseSource, now: UInt64 = Clock.now()) throws(AuthorityError) -> (nextSerial: UInt64, krl: PublishedKRL) {
        guard home.isInitialized else {
            throw AuthorityError(.home, "no CA at \(home.path); restore needs the CA home (keys and sshca.toml) in place")
        }
        guard Files.exists(backupPath) else { throw AuthorityError(.io, "backup file \(backupPath) does not exist") }
        // Nothing else may have the ledger open: a running service would go on with the file
        // it opened, issue serials the restored ledger never sees and publish KRLs below its
        // version floor, which every server refuses.
        let homeLock: FileLock
        do {
            homeLock = try FileLock(path: home.homeLockPath, mode: .exclusive, wait: false)
        } catch where error.code == .home {
            throw AuthorityError(.home, "\(home.path) is in use by a running sshca serve or another sshca command; stop the service first (systemctl stop sshca, or Ctrl-C where it runs), then run sshca restore again. Nothing was changed")
        }
        do {
            try SQLiteLedger.validateBackup(path: backupPath)
        } catch {
            throw AuthorityError(.badInput, "\(AuthorityError.from(error).reason); nothing was changed")
        }
        // What servers were last told stays revoked: the restored ledger takes over the current
        // KRL's revocations, so a restore never un-revokes anything.
        let published = Files.exists(home.krlPath) ? try? KRLInspection.read(home.krlPath).krl : nil
        let lock = try FileLock(path: home.krlLockPath)
        defer { lock.release() }
        let staging = home.ledgerPath + ".restore"
        for suffix in ["", "-wal", "-shm"] { Files.remove(staging + suffix) }
        let copied = try Files.read(backupPath, maximumBytes: 1 << 40, what: "backup")
        try Files.writeAtomically(staging, copied, mode: 0o600)
        do {
            let restored = try SQLiteLedger(path: staging)
            let check = try restored.integrityCheck()
            guard check == "ok" else {
                throw AuthorityError(.ledger, "the backup \(backupPath) is damaged (integrity check: \(check)); nothing was changed")
            }
            guard case .intact = try restored.verifyAudit() else {
                throw AuthorityError(.ledger, "the backup \(backupPath) has a broken audit chain; nothing was changed")
            }
            try restored.applyRestoreJump(by: by, now: now, source: backupPath)
            if let published {
                try restored.importRevocations(from: published, reason: "carried over at restore", by: by, now: now)
            }
            try restored.checkpoint()
            try restored.close()
        } catch {
            for suffix in ["", "-wal", "-shm"] { Files.remove(staging + suffix) }
            if let error = error as? LedgerError, error.code == .corrupt || error.code == .storage {
                throw AuthorityError(.ledger, "\(backupPath) is not a usable sshca ledger backup (\(error.reason)); nothing was changed")
            }
            throw AuthorityError.from(error)
        }
        // The old ledger's WAL must not be applied to the restored file.
        for suffix in ["-wal", "-shm", ".restore-wal", ".restore-shm"] { Files.remove(home.ledgerPath + suffix) }
        guard rename(staging, home.ledgerPath) == 0 else {
            throw AuthorityError(.io, "cannot move the restored ledger into place: \(String(cString: strerror(errno)))")
        }
        lock.release()
        // The home is ours again only as one user among others (the service may start now).
        homeLock.release()
        let authority = try CertificateAuthority(home: home)
        let counters: (nextSerial: UInt64, krlVersion: UInt64)
        do { counters = try authority.ledger.counters() } catch { throw AuthorityError.from(error) }
        let krl = try authority.publishKRL(by: by, passphrase: passphrase, now: now)
        return (counters.nextSerial, krl)
    }
}

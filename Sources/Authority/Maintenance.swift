import Common
import Ledger
import LedgerSQLite
import SSHFormat
import SSHCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CertificateAuthority {
    /// The whole CA in one file, taken while it may be issuing: a consistent copy of the ledger
    /// (SQLite's backup API reads one snapshot) holding the configuration and the CA keys. A
    /// private key goes in only encrypted: one stored encrypted goes in as it is; one stored
    /// unencrypted is encrypted for the backup with `keyPassphrase`. Keys that live in
    /// ssh-agent are not on disk and so not in the backup (their public halves are). The file
    /// is 0600 from its first byte: it also holds identities, token hashes and the audit log.
    public func backup(to path: String, keyPassphrase: PassphraseSource) throws(SSHCAError) -> [BackupFile] {
        if Files.exists(path) {
            throw SSHCAError(.io, "\(path) already exists; choose a new file name for the backup")
        }
        try KeyFiles.checkWritable(path)
        let files = try backupFiles(keyPassphrase: keyPassphrase)
        let temporary = path + ".partial"
        Files.remove(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SSHCAError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        close(fd)
        do {
            try maintenance.backup(to: temporary, files: files)
        } catch {
            Files.remove(temporary)
            throw SSHCAError.from(error)
        }
        guard rename(temporary, path) == 0 else {
            Files.remove(temporary)
            throw SSHCAError(.io, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        return files
    }

    /// The home's files a backup carries: sshca.toml, the public keys, the private keys encrypted.
    func backupFiles(keyPassphrase: PassphraseSource) throws(SSHCAError) -> [BackupFile] {
        func file(_ path: String, mode: UInt32) throws(SSHCAError) -> BackupFile {
            BackupFile(name: Files.baseName(of: path), mode: mode, content: try Files.read(path, maximumBytes: 1 << 20, what: Files.baseName(of: path)))
        }
        var files = [try file(home.configurationPath, mode: 0o644)]
        var passphrase: [UInt8]? = nil
        for kind in CAKind.allCases {
            files.append(try file(home.publicKeyPath(kind), mode: 0o644))
            let storage = kind == .user ? configuration.userKeyStorage : configuration.hostKeyStorage
            guard storage == .file else { continue }
            let path = home.privateKeyPath(kind)
            let pem = try Files.readText(path, maximumBytes: 1 << 20, what: "\(kind.rawValue) CA private key")
            if PrivateKey.isEncrypted(pem: pem) {
                files.append(BackupFile(name: Files.baseName(of: path), mode: 0o600, content: Array(pem.utf8)))
                continue
            }
            if passphrase == nil {
                do {
                    passphrase = try keyPassphrase.read()
                } catch {
                    throw SSHCAError(.key, "the \(kind.rawValue) CA key is stored unencrypted (\(path)), and a backup holds CA keys only encrypted: give --passphrase-file FILE with a passphrase to encrypt the backup's copies with (keep it apart from the backup), or run this on a terminal to be asked. Nothing was written (\(error.reason))")
                }
                guard let given = passphrase, given.count >= 8 else {
                    throw SSHCAError(.badInput, "the passphrase for the backup's keys is shorter than 8 characters; use a longer one")
                }
            }
            do {
                let encrypted = try PrivateKey(pem: pem, passphrase: nil).pem(passphrase: passphrase)
                files.append(BackupFile(name: Files.baseName(of: path), mode: 0o600, content: Array(encrypted.utf8)))
            } catch {
                throw SSHCAError(.key, "cannot encrypt the \(kind.rawValue) CA key for the backup: \(error.reason)")
            }
        }
        return files
    }

    /// Replaces the ledger with a backup. The lost ledger may have issued serials and published
    /// KRL versions past the backup's, so both counters jump (SQLiteLedger.restoreJump); then a
    /// new KRL is published. Stop anything else using this CA home first.
    public static func restore(home: CAHome, from backupPath: String, by: String, passphrase: PassphraseSource, now: UInt64 = Clock.now()) async throws(SSHCAError) -> (nextSerial: UInt64, krl: PublishedKRL, filesPutBack: [String]) {
        guard Files.exists(backupPath) else { throw SSHCAError(.io, "backup file \(backupPath) does not exist") }
        let held: [BackupFile]
        do {
            try SQLiteLedger.validateBackup(path: backupPath)
            held = try SQLiteLedger.backupFiles(path: backupPath)
        } catch {
            throw SSHCAError(.badInput, "\(SSHCAError.from(error).reason); nothing was changed")
        }
        guard home.isInitialized || !held.isEmpty else {
            throw SSHCAError(.home, "no CA at \(home.path), and \(backupPath) holds only a ledger (a backup made before backups held the whole CA); put the CA home (keys and sshca.toml) in place first")
        }
        // Into a new home (a new machine): the configuration and keys first. Into a home with a
        // CA: only when it is the backup's CA.
        let filesPutBack = try putBackFiles(held, into: home, backupPath: backupPath)
        // Nothing else may have the ledger open: a running service would go on with the file
        // it opened, issue serials the restored ledger never sees and publish KRLs below its
        // version floor, which every server refuses.
        let homeLock: FileLock
        do {
            homeLock = try FileLock(path: home.homeLockPath, mode: .exclusive, wait: false)
        } catch where error.code == .home {
            throw SSHCAError(.home, "\(home.path) is in use by a running sshca serve or another sshca command; stop the service first (systemctl stop sshca, or Ctrl-C where it runs), then run sshca restore again. Nothing was changed")
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
                throw SSHCAError(.ledger, "the backup \(backupPath) is damaged (integrity check: \(check)); nothing was changed")
            }
            guard case .intact = try restored.verifyAudit() else {
                throw SSHCAError(.ledger, "the backup \(backupPath) has a broken audit chain; nothing was changed")
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
                throw SSHCAError(.ledger, "\(backupPath) is not a usable sshca ledger backup (\(error.reason)); nothing was changed")
            }
            throw SSHCAError.from(error)
        }
        // The old ledger's WAL must not be applied to the restored file.
        for suffix in ["-wal", "-shm", ".restore-wal", ".restore-shm"] { Files.remove(home.ledgerPath + suffix) }
        guard rename(staging, home.ledgerPath) == 0 else {
            throw SSHCAError(.io, "cannot move the restored ledger into place: \(String(cString: strerror(errno)))")
        }
        lock.release()
        // The home is ours again only as one user among others (the service may start now).
        homeLock.release()
        let authority = try CertificateAuthority(home: home)
        let counters: (nextSerial: UInt64, krlVersion: UInt64)
        do { counters = try await authority.ledger.counters() } catch { throw SSHCAError.from(error) }
        let krl = try await authority.publishKRL(by: by, passphrase: passphrase, now: now)
        return (counters.nextSerial, krl, filesPutBack)
    }

    /// Puts the backup's files into a home that lacks them (a new machine). A home that has a
    /// CA must have the backup's CA keys: a ledger belongs to its CA, and restoring one CA's
    /// ledger into another would make it publish the wrong revocations.
    static func putBackFiles(_ held: [BackupFile], into home: CAHome, backupPath: String) throws(SSHCAError) -> [String] {
        guard !held.isEmpty else { return [] }
        let allowed = Set([Configuration.fileName] + CAKind.allCases.flatMap { [Files.baseName(of: home.privateKeyPath($0)), Files.baseName(of: home.publicKeyPath($0))] })
        if let odd = held.first(where: { !allowed.contains($0.name) }) {
            throw SSHCAError(.badInput, "\(backupPath) holds a file sshca does not put in a CA home (\(odd.name.debugEscaped)); nothing was changed")
        }
        if home.isInitialized {
            for kind in CAKind.allCases {
                let name = Files.baseName(of: home.publicKeyPath(kind))
                guard let copy = held.first(where: { $0.name == name }) else { continue }
                let theirs = try? PublicKeyText(parsing: String(decoding: copy.content, as: UTF8.self)).key
                let ours = try home.publicKey(kind)
                guard theirs == ours else {
                    throw SSHCAError(.home, "\(backupPath) is a backup of another CA (its \(kind.rawValue) CA key is \(theirs?.fingerprint ?? "unreadable"); \(home.path) holds \(ours.fingerprint)). Restore it into a new home: sshca restore \(backupPath) --home NEW-DIRECTORY. Nothing was changed")
                }
            }
            return []
        }
        try Files.makeDirectory(home.path, mode: 0o700)
        var written: [String] = []
        for file in held where !Files.exists(home.path + "/" + file.name) {
            try Files.writeAtomically(home.path + "/" + file.name, file.content, mode: mode_t(file.mode & 0o777))
            written.append(file.name)
        }
        return written
    }
}

import Common
import SSHFormat
import SSHCrypto
public import Ledger
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The CA at work: a home, its configuration and its ledger. The CLI (and later the service)
/// call these methods and only print what they return.
public struct CertificateAuthority: Sendable {
    public let home: CAHome
    public let configuration: Configuration
    /// Behind the protocol: Authority holds no SQL, so another store can replace SQLite.
    public let ledger: any Ledger
    /// The backend's own upkeep (backups, write probes, read-only state, durability settings).
    public let maintenance: any LedgerMaintenance
    /// This process uses the home: a restore cannot replace the ledger under it.
    let homeLock: FileLock?

    /// Opens the home's ledger for `use` (`.service` for the long-running service).
    /// `readOnlyLedgerFallback`: a ledger that cannot be written is opened read-only (the service
    /// keeps serving what is committed and says why it cannot issue).
    /// `configuration`: read from another file than the home's sshca.toml (`serve --config`).
    public init(home: CAHome, configuration: Configuration? = nil, use: LedgerUse = .command,
                readOnlyLedgerFallback: Bool = false) throws(SSHCAError) {
        let homeLock = try Self.lockShared(home)
        let resolved: Configuration
        if let configuration { resolved = configuration } else { resolved = try home.configuration() }
        let opened = try home.openLedger(for: use, lockTimeout: resolved.ledgerLockTimeout, readOnlyFallback: readOnlyLedgerFallback)
        self.init(home: home, configuration: resolved, ledger: opened.ledger, maintenance: opened.maintenance, homeLock: homeLock)
    }

    /// A CA on a ledger opened elsewhere (any backend).
    public init(home: CAHome, configuration: Configuration, ledger: any Ledger, maintenance: any LedgerMaintenance) throws(SSHCAError) {
        self.init(home: home, configuration: configuration, ledger: ledger, maintenance: maintenance, homeLock: try Self.lockShared(home))
    }

    private init(home: CAHome, configuration: Configuration, ledger: any Ledger, maintenance: any LedgerMaintenance, homeLock: FileLock?) {
        self.home = home
        self.configuration = configuration
        self.ledger = ledger
        self.maintenance = maintenance
        self.homeLock = homeLock
    }

    /// The shared hold on the home every ledger user takes. A home that cannot take a lock file
    /// (a read-only copy) is used without one: nothing can replace its ledger either.
    static func lockShared(_ home: CAHome) throws(SSHCAError) -> FileLock? {
        do {
            return try FileLock(path: home.homeLockPath, mode: .shared, wait: false)
        } catch where error.code == .home {
            throw SSHCAError(.home, "the ledger of \(home.path) is being restored (sshca restore holds \(home.homeLockPath)); try again when that is done")
        } catch {
            return nil
        }
    }

    // MARK: Issuance

    /// Checks the request, unlocks the CA key only when the request is acceptable, and issues:
    /// the serial comes from the ledger and the certificate is committed there before it is
    /// returned. If the commit fails, nothing is issued.
    public func issue(_ request: CertificateRequest, requestedBy: Requester, passphrase: PassphraseSource,
                      now: UInt64 = Clock.now()) async throws(SSHCAError) -> IssuedCertificate {
        if request.serial != nil {
            throw SSHCAError(.badInput, "--serial is refused: serials come from the ledger (strictly increasing, never reused); leave it out")
        }
        let kind: CAKind = request.type == .host ? .host : .user
        let body = try Issuer.body(for: request, configuration: configuration, signatureKey: try home.publicKey(kind),
                                   caKeys: try caPublicKeys(), now: now)
        do {
            try await ledger.checkIssuable(body)
        } catch {
            throw SSHCAError.from(error)
        }
        let issuer = Issuer(signer: try home.signer(kind, passphrase: passphrase, configuration: configuration), configuration: configuration)
        let pending = PendingIssuance(body: body, issuer: issuer, requester: requestedBy, keyIDNamesSerial: request.keyIDNamesSerial)
        return try await Self.commit([pending], to: ledger, now: now)[0].get()
    }

    // MARK: Revocation

    /// Records the revocation, then publishes the KRL that carries it.
    /// The one revocation path, for `sshca revoke` and the service: the revocation is committed
    /// first (then it stands, whatever follows), then the KRL that carries it is published (a new
    /// version only when the KRL on disk does not carry it yet). `krl` says how publishing went,
    /// apart from the revocation, so a caller can report a committed revocation whose KRL is
    /// still to be written.
    public func revoke(_ target: RevocationTarget, reason: String, by: String, passphrase: PassphraseSource,
                       now: UInt64 = Clock.now()) async throws(SSHCAError) -> (outcome: RevocationOutcome, krl: Result<(krl: PublishedKRL, published: Bool), SSHCAError>) {
        let outcome = try await recordRevocation(target, reason: reason, by: by, now: now)
        do {
            if outcome.isNew { return (outcome, .success((try await publishKRL(by: by, passphrase: passphrase, now: now), true))) }
            let result = try await publishKRLIfChanged(by: by, passphrase: passphrase, now: now)
            return (outcome, .success((result.krl, result.changed)))
        } catch {
            return (outcome, .failure(error))
        }
    }

    /// The servers that synced the KRL from the service, judged against the version of the
    /// home's published KRL (read from its header only).
    public func hosts(now: UInt64 = Clock.now()) async throws(SSHCAError) -> [ServiceAPI.Host] {
        let current = ((try? await ledger.publishedKRLs.current()) ?? nil)?.version ?? 0
        do { return try await ledger.hosts().map { ServiceAPI.Host($0, currentKRL: current, now: now) } } catch { throw SSHCAError.from(error) }
    }

    /// Publishes a new KRL version only when the ledger revokes something the current KRL file
    /// does not (or the file is missing, damaged or wrongly signed): what was revoked already
    /// is in the current version.
    public func publishKRLIfChanged(by: String, passphrase: PassphraseSource, now: UInt64 = Clock.now()) async throws(SSHCAError) -> (krl: PublishedKRL, changed: Bool) {
        try await KRLPublisher(authority: self).publishIfChanged(by: by, passphrase: passphrase, now: now)
    }

    /// Commits the revocation to the ledger without publishing the KRL (`revoke` publishes after it).
    public func recordRevocation(_ target: RevocationTarget, reason: String, by: String,
                                 now: UInt64 = Clock.now()) async throws(SSHCAError) -> RevocationOutcome {
        try IssuanceRules.checkRevocation(target, reason: reason)
        let caKeys = try caPublicKeys()
        if case .key(let key) = target, let kind = caKeys.firstIndex(of: key).map({ $0 == 0 ? "user" : "host" }) {
            // In a KRL a revoked CA key ends every certificate it signed, on every server that
            // takes the KRL: that is its own decision (sshca revoke --ca-key-compromised), never
            // the side effect of revoking "a key".
            throw SSHCAError(.badInput, "\(key.fingerprint) is this CA's \(kind) CA key, not a user's or host's key; revoking it ends every certificate it signed. If it was compromised, run on the CA home: sshca revoke --ca-key-compromised\(kind == "host" ? " --host" : "") --reason TEXT")
        }
        try await registerCAKeys(caKeys)
        do {
            return try await ledger.revoke(target, reason: reason, by: by, now: now)
        } catch {
            throw SSHCAError.from(error)
        }
    }

    /// Tells the ledger this home's CA keys, so key-id revocations cover certificates either CA
    /// signs, including ones made before the ledger existed.
    func registerCAKeys(_ keys: [PublicKey]) async throws(SSHCAError) {
        do { try await ledger.registerCAKeys(keys) } catch { throw SSHCAError.from(error) }
    }

    /// Every CA key this home holds, user first: none of them may be certified as a subject key,
    /// or revoked as a plain key.
    public func caPublicKeys() throws(SSHCAError) -> [PublicKey] {
        [try home.publicKey(.user), try home.publicKey(.host)]
    }

    // MARK: KRL

    /// Builds the KRL from the ledger and replaces `revoked.krl` atomically. A lock file orders
    /// concurrent writers, and the version is allocated under it, so files appear in version order.
    public func publishKRL(by: String, passphrase: PassphraseSource, now: UInt64 = Clock.now()) async throws(SSHCAError) -> PublishedKRL {
        try await KRLPublisher(authority: self).publish(by: by, passphrase: passphrase, now: now)
    }

    /// Writes a copy of a freshly built KRL (a new version) to another path.
    public func writeKRL(to path: String, by: String, passphrase: PassphraseSource, now: UInt64 = Clock.now()) async throws(SSHCAError) -> PublishedKRL {
        try await KRLPublisher(authority: self).publish(copies: [path], by: by, passphrase: passphrase, now: now)
    }

    // MARK: Queries

    public func certificates(_ query: CertificateQuery, now: UInt64 = Clock.now()) async throws(SSHCAError) -> [IssuedCertificate] {
        do { return try await ledger.certificates(matching: query, now: now) } catch { throw SSHCAError.from(error) }
    }

    /// known_hosts lines: `@cert-authority PATTERNS <host CA key>`, and `@revoked * <key>` for
    /// every revoked key that the ledger knows as a host key.
    public func knownHostsLines(hostPatterns: String) async throws(SSHCAError) -> [String] {
        var lines = [try Self.certAuthorityLine(hostPatterns: hostPatterns, hostCA: try home.publicKey(.host))]
        do {
            for key in try await ledger.revokedHostKeys() { lines.append("@revoked * \(key.openSSHLine())") }
        } catch {
            throw SSHCAError.from(error)
        }
        return lines
    }

    /// The known_hosts line that trusts `hostCA` for `hostPatterns` (comma-separated, spaces
    /// around commas dropped); patterns with white space, control characters or '#' are refused
    /// (they would split or end the line).
    public static func certAuthorityLine(hostPatterns: String, hostCA: PublicKey) throws(SSHCAError) -> String {
        let patterns = hostPatterns.split(separator: ",").map { $0.trimmingCharacters(in: " \t") }
        guard !patterns.isEmpty, patterns.allSatisfy({ !$0.isEmpty && !$0.contains(where: { $0.isWhitespace || $0 == "#" || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false }) }) else {
            throw SSHCAError(.badInput, "--hosts needs comma-separated host patterns without spaces, like '*.example.com,10.0.0.*'")
        }
        return "@cert-authority \(patterns.joined(separator: ",")) \(hostCA.openSSHLine(comment: "sshca-host-ca"))"
    }

    /// Recomputes the chain, then checks it against the witnesses: each KRL names the chain head
    /// it was published at, and that entry must still be in the chain (a cut-off tail shows here).
    public func verifyAudit(witnesses: [String]? = nil) async throws(SSHCAError) -> AuditVerification {
        let result: AuditVerification
        let entries: [AuditEntry]
        do {
            result = try await ledger.verifyAudit()
            entries = try await ledger.auditEntries(limit: nil)
        } catch {
            throw SSHCAError.from(error)
        }
        guard case .intact = result else { return result }
        let hashes = Set(entries.map(\.hashHex))
        for path in witnesses ?? (Files.exists(home.krlPath) ? [home.krlPath] : []) {
            let krl = try KRLInspection.read(path).krl
            guard let head = KRLPublisher.auditHead(of: krl) else { continue }
            if !hashes.contains(head) {
                return .broken(entryID: Int64(entries.count + 1),
                               reason: "\(path) (KRL version \(krl.version)) names audit head \(head), which is not in the chain: entries were removed or rewritten")
            }
        }
        return result
    }

    public func auditEntries(limit: Int?) async throws(SSHCAError) -> [AuditEntry] {
        do { return try await ledger.auditEntries(limit: limit) } catch { throw SSHCAError.from(error) }
    }

    public func certificate(serial: UInt64) async throws(SSHCAError) -> IssuedCertificate {
        let found: IssuedCertificate?
        do { found = try await ledger.certificate(serial: serial) } catch { throw SSHCAError.from(error) }
        guard let found else {
            throw SSHCAError(.notFound, "no certificate with serial \(serial) in the ledger; list them with: sshca list")
        }
        return found
    }
}

/// The user running a CLI command, for the ledger's records: --by, else $SUDO_USER, else the
/// login name, else the uid.
public enum Operator {
    public static func name(_ explicit: String?) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let sudo = Environment.value("SUDO_USER"), !sudo.isEmpty { return sudo }
        if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name {
            return String(cString: name)
        }
        return "uid \(getuid())"
    }
}
